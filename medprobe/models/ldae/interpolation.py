"""Semantic interpolation between two scans, as LDAE evaluates it on longitudinal pairs.

Each scan is encoded twice: its semantic vector y and its stochastic code z_T (DDIM inversion of the posterior-mean
latent under y). Between scans a and b at fraction α, y is interpolated linearly and z_T spherically (the codes are
near-Gaussian, so a straight line would shrink their norm), then DDIM-sampled back and decoded. For a subject's
first and last session, α = elapsed time of the middle session / total time, and the result is compared with the
real middle session.
"""

from __future__ import annotations

import torch

from medprobe.models.ldae.codes import decode, encode
from medprobe.models.ldae.networks import LatentDiffusionAutoencoder


def slerp(a: torch.Tensor, b: torch.Tensor, alpha: float) -> torch.Tensor:
    """Spherical interpolation of each batch item's flattened tensor (linear where the two are parallel)."""
    flat_a, flat_b = a.flatten(1), b.flatten(1)
    cos = torch.nn.functional.cosine_similarity(flat_a, flat_b, dim=1).clamp(-1.0, 1.0)
    theta = torch.arccos(cos)[:, None]
    sin = torch.sin(theta)
    linear = sin.abs() < 1e-6
    w_a = torch.where(linear, torch.full_like(theta, 1 - alpha), torch.sin((1 - alpha) * theta) / sin)
    w_b = torch.where(linear, torch.full_like(theta, alpha), torch.sin(alpha * theta) / sin)
    return (w_a * flat_a + w_b * flat_b).view_as(a)


@torch.no_grad()
def interpolate(model: LatentDiffusionAutoencoder, x_a: torch.Tensor, x_b: torch.Tensor, alpha: float,
                steps: int | None = None) -> torch.Tensor:
    """The volume α of the way from x_a to x_b (α = 0 gives x_a's reconstruction, 1 gives x_b's)."""
    y_a, code_a = encode(model, x_a, steps)
    y_b, code_b = encode(model, x_b, steps)
    return decode(model, torch.lerp(y_a, y_b, alpha), slerp(code_a, code_b, alpha), steps)
