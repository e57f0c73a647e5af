"""The two codes of a volume in a diffusion autoencoder, and the way back.

A volume x has a semantic vector y (the semantic encoder's output: the embedding) and a stochastic code z_T: the
deterministic DDIM inversion of its posterior-mean latent under y, which holds what y leaves out. Decoding DDIM-
samples z_T back under y and decodes the latent; with enough steps decode(encode(x)) reconstructs x.
"""

from __future__ import annotations

import torch

from medprobe.models.ldae.networks import LatentDiffusionAutoencoder
from medprobe.models.ldae.schedules import ddim_invert, ddim_sample


@torch.no_grad()
def encode(model: LatentDiffusionAutoencoder, x: torch.Tensor, steps: int | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """(semantic vector y, stochastic code z_T) of volumes x (B, 1, *size) in [0, 1]."""
    y = model.semantic(x)
    z0 = model.encode_latent(x, sample=False)
    return y, ddim_invert(lambda z, t: model.predict_noise(z, t, y), z0, model.config.diffusion, steps)


@torch.no_grad()
def decode(model: LatentDiffusionAutoencoder, y: torch.Tensor, z_T: torch.Tensor, steps: int | None = None
           ) -> torch.Tensor:
    """The volume (clamped to [0, 1]) that code z_T becomes under semantic vector y."""
    z0 = ddim_sample(lambda z, t: model.predict_noise(z, t, y), z_T, model.config.diffusion, steps)
    return model.decode_latent(z0).clamp(0, 1)
