"""Reconstruction as LDAE reports it: encode, DDIM-invert the latent under the semantic vector, sample back,
decode; SSIM and MSE against the input (3D, data range 1, a 3-voxel Gaussian window as upstream's
kernel_size=3). The autoencoder's own reconstruction (decode of the posterior mean) is the ceiling and is
reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.metrics import SSIMMetric

from medprobe.models.ldae.networks import LatentDiffusionAutoencoder
from medprobe.models.ldae.schedules import ddim_invert, ddim_sample


@dataclass(frozen=True)
class ReconstructionReport:
    volumes: int
    ddim_steps: int
    ssim: float
    mse: float
    autoencoder_ssim: float
    autoencoder_mse: float


@torch.no_grad()
def reconstruct(model: LatentDiffusionAutoencoder, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
    """x (B, 1, *size) in [0, 1] → its LDAE reconstruction, clamped to [0, 1]."""
    y = model.semantic(x)
    z0 = model.encode_latent(x, sample=False)

    def noise_fn(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return model.predict_noise(z, t, y)

    diffusion = model.config.diffusion
    z_T = ddim_invert(noise_fn, z0, diffusion, steps)
    return model.decode_latent(ddim_sample(noise_fn, z_T, diffusion, steps)).clamp(0, 1)


@torch.no_grad()
def reconstruction_report(model: LatentDiffusionAutoencoder, volumes: torch.Tensor, device: torch.device,
                          steps: int | None = None, batch_size: int = 1) -> ReconstructionReport:
    model.eval()
    ssim = SSIMMetric(spatial_dims=3, data_range=1.0, win_size=3, reduction="none")
    scores: dict[str, list[torch.Tensor]] = {"ssim": [], "mse": [], "ae_ssim": [], "ae_mse": []}
    for start in range(0, len(volumes), batch_size):
        x = volumes[start : start + batch_size].to(device)
        ours = reconstruct(model, x, steps).float()
        ae = model.autoencoder.reconstruct(x).clamp(0, 1).float()
        for key, recon in (("", ours), ("ae_", ae)):
            similarity = ssim(recon, x)  # typed for list inputs too; tensors in give a tensor out
            if not isinstance(similarity, torch.Tensor):
                raise TypeError(f"SSIMMetric returned a {type(similarity).__name__}, expected a tensor")
            scores[f"{key}ssim"].append(similarity.flatten().cpu())
            scores[f"{key}mse"].append((recon - x).pow(2).flatten(1).mean(1).cpu())
    mean = {k: float(torch.cat(v).mean()) for k, v in scores.items()}
    return ReconstructionReport(len(volumes), steps or model.config.diffusion.ddim_steps, mean["ssim"], mean["mse"],
                                mean["ae_ssim"], mean["ae_mse"])
