"""Reconstruction as LDAE reports it: encode, DDIM-invert the latent under the semantic vector, sample back,
decode; SSIM and MSE against the input (3D, data range 1, a 3-voxel Gaussian window as upstream's
kernel_size=3). The autoencoder's own reconstruction (decode of the posterior mean) is the ceiling and is
reported beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from monai.metrics import SSIMMetric

from medprobe.models.ldae.codes import decode, encode
from medprobe.models.ldae.networks import LatentDiffusionAutoencoder


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
    return decode(model, *encode(model, x, steps), steps)


def volume_ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """SSIM per volume of two (B, 1, X, Y, Z) batches in [0, 1]: 3D, data range 1, 3-voxel window (as LDAE)."""
    similarity = SSIMMetric(spatial_dims=3, data_range=1.0, win_size=3, reduction="none")(a.float(), b.float())
    if not isinstance(similarity, torch.Tensor):  # typed for list inputs too; tensors in give a tensor out
        raise TypeError(f"SSIMMetric returned a {type(similarity).__name__}, expected a tensor")
    return similarity.flatten().cpu()


def volume_mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.float() - b.float()).pow(2).flatten(1).mean(1).cpu()


@torch.no_grad()
def reconstruction_report(model: LatentDiffusionAutoencoder, volumes: torch.Tensor, device: torch.device,
                          steps: int | None = None, batch_size: int = 1) -> ReconstructionReport:
    model.eval()
    scores: dict[str, list[torch.Tensor]] = {"ssim": [], "mse": [], "ae_ssim": [], "ae_mse": []}
    for start in range(0, len(volumes), batch_size):
        x = volumes[start : start + batch_size].to(device)
        ours = reconstruct(model, x, steps)
        ae = model.autoencoder.reconstruct(x).clamp(0, 1)
        for key, recon in (("", ours), ("ae_", ae)):
            scores[f"{key}ssim"].append(volume_ssim(recon, x))
            scores[f"{key}mse"].append(volume_mse(recon, x))
    mean = {k: float(torch.cat(v).mean()) for k, v in scores.items()}
    return ReconstructionReport(len(volumes), steps or model.config.diffusion.ddim_steps, mean["ssim"], mean["mse"],
                                mean["ae_ssim"], mean["ae_mse"])
