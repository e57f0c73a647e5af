"""A handcrafted baseline: intensity histogram, moments and simple texture statistics.

Every foundation model should beat this vector; when it does not, the task is solved by intensity alone.
"""

from __future__ import annotations

import functools
import operator
from pathlib import Path
from typing import Any

import torch

from medprobe.errors import MedprobeError
from medprobe.models.encoder import Encoder
from medprobe.models.registry import register_model
from medprobe.preprocess.input_spec import InputSpec

FEATURE_VERSION = "handcrafted-v1"
PERCENTILES = (0.05, 0.25, 0.5, 0.75, 0.95)


class HandcraftedEncoder(Encoder):
    """Features of the intensity-scaled image (0–1) at its own resolution, 2D or 3D, one channel."""

    def __init__(self, name: str, bins: int) -> None:
        self.name = name
        self.bins = bins
        self.embed_dim = bins + 4 + len(PERCENTILES) + 7
        self.preprocessing = InputSpec(spatial_dims=None, size=None, channels=1, mean=None, std=None)
        self.weights_sha256 = None
        self.options = {"bins": bins}

    @property
    def pretrained(self) -> bool:
        return True  # nothing to train: the features are the method, not a random network

    @property
    def weights_label(self) -> str:
        return FEATURE_VERSION

    @property
    def architecture(self) -> str:
        return FEATURE_VERSION

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float().mean(dim=1)  # (B, *spatial): one channel, or the mean of several
        flat = x.flatten(1)
        return torch.cat(
            [self._histogram(flat), self._moments(flat), torch.quantile(flat, torch.tensor(PERCENTILES), dim=1).T,
             self._texture(x, flat)],
            dim=1,
        )

    def _histogram(self, flat: torch.Tensor) -> torch.Tensor:
        index = (flat.clamp(0, 1) * self.bins).long().clamp(max=self.bins - 1)
        counts = torch.zeros(flat.shape[0], self.bins).scatter_add_(1, index, torch.ones_like(flat))
        return counts / flat.shape[1]

    @staticmethod
    def _moments(flat: torch.Tensor) -> torch.Tensor:
        mean = flat.mean(dim=1, keepdim=True)
        centred = flat - mean
        std = centred.pow(2).mean(dim=1, keepdim=True).sqrt().clamp_min(1e-6)
        skew = (centred / std).pow(3).mean(dim=1, keepdim=True)
        kurt = (centred / std).pow(4).mean(dim=1, keepdim=True) - 3
        return torch.cat([mean, std, skew, kurt], dim=1)

    def _texture(self, x: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
        spatial = tuple(range(1, x.ndim))
        grads = [torch.diff(x, dim=d) for d in spatial]
        grad_sq = functools.reduce(operator.add, [g.pow(2).flatten(1).mean(dim=1) for g in grads])
        grad_abs = torch.stack([g.abs().flatten(1).mean(dim=1) for g in grads], dim=1)
        second = [torch.diff(x, n=2, dim=d).abs().flatten(1).mean(dim=1) for d in spatial]
        histogram = self._histogram(flat)
        entropy = -(histogram * histogram.clamp_min(1e-12).log()).sum(dim=1)
        foreground = (flat > 0.05).float().mean(dim=1)
        bright = (flat > 0.8).float().mean(dim=1)
        return torch.stack(
            [grad_sq.sqrt(), grad_abs.mean(dim=1), grad_abs.std(dim=1, unbiased=False),
             torch.stack(second, dim=1).mean(dim=1), entropy, foreground, bright],
            dim=1,
        )


@register_model("handcrafted")
def build_handcrafted(name: str, weights: Path | None, bins: int = 32, **unknown: Any) -> HandcraftedEncoder:
    if weights is not None:
        raise MedprobeError(f"model '{name}' has no weights; remove 'weights' from its spec entry")
    if unknown:
        raise MedprobeError(f"model '{name}': unknown option(s) {sorted(unknown)}; known: bins")
    if not 4 <= int(bins) <= 256:
        raise MedprobeError(f"model '{name}': bins must be between 4 and 256, got {bins}")
    return HandcraftedEncoder(name, int(bins))
