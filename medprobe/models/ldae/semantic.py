"""Semantic encoders: a volume (B, 1, X, Y, Z) in [0, 1] → the representation vector (B, dim).

This vector is all the conditional diffusion model learns to need about the image beyond its noisy latent, so
it is the embedding the zoo adapter publishes.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import nn

from medprobe.models.ldae.config import SemanticConfig


def _groups(channels: int) -> int:
    return math.gcd(channels, 8)


class _ResBlock(nn.Module):
    def __init__(self, channels: int, conv: type[nn.Conv2d] | type[nn.Conv3d]) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(_groups(channels), channels), nn.SiLU(), conv(channels, channels, 3, padding=1),
            nn.GroupNorm(_groups(channels), channels), nn.SiLU(), conv(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _cnn(in_channels: int, channels: tuple[int, ...], spatial_dims: int, pool: bool = True) -> nn.Sequential:
    """Stem, then per level one residual block and a strided convolution to the next width; global average
    pooling, or (pool False) the flattened last feature map."""
    conv = nn.Conv3d if spatial_dims == 3 else nn.Conv2d
    layers: list[nn.Module] = [conv(in_channels, channels[0], 3, padding=1)]
    for width, following in itertools.pairwise(channels):
        layers += [_ResBlock(width, conv), conv(width, following, 3, stride=2, padding=1)]
    layers += [_ResBlock(channels[-1], conv), nn.GroupNorm(_groups(channels[-1]), channels[-1]), nn.SiLU()]
    if pool:
        layers.append(nn.AdaptiveAvgPool3d(1) if spatial_dims == 3 else nn.AdaptiveAvgPool2d(1))
    return nn.Sequential(*layers, nn.Flatten())


class SemanticEncoder3D(nn.Module):
    """A compact residual 3D CNN: the cheap default, and the one used on small volumes."""

    def __init__(self, config: SemanticConfig, size: tuple[int, int, int]) -> None:
        super().__init__()
        self.features = _cnn(1, config.channels, spatial_dims=3, pool=config.pooling == "mean")
        width = config.channels[-1]
        if config.pooling == "flatten":
            down = 2 ** (len(config.channels) - 1)
            width *= math.prod(-(-s // down) for s in size)
        self.head = nn.Sequential(nn.Linear(width, config.dim), nn.LayerNorm(config.dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SemanticEncoder25D(nn.Module):
    """LDAE's 2.5D encoder: a 2D backbone per slice, then attention pooling over the slice tokens.

    Slices along `slice_axis` become tokens (+ sinusoidal position); a soft-attention weighted mean of the tokens
    is the single query of a multi-head attention over all tokens; LayerNorm of its output is the vector.
    """

    position: torch.Tensor  # a registered buffer

    def __init__(self, config: SemanticConfig, slices: int) -> None:
        super().__init__()
        self.axis = config.slice_axis
        self.backbone, width = _backbone_2d(config)
        self.project = nn.Linear(width, config.dim) if width != config.dim else nn.Identity()
        self.register_buffer("position", _sinusoidal(slices, config.dim), persistent=False)
        self.dropout = nn.Dropout(config.dropout)
        self.score = nn.Linear(config.dim, 1)
        self.query = nn.Linear(config.dim, config.dim)
        self.key = nn.Linear(config.dim, config.dim)
        self.value = nn.Linear(config.dim, config.dim)
        self.attention = nn.MultiheadAttention(config.dim, config.heads, dropout=config.dropout, batch_first=True)
        self.norm = nn.LayerNorm(config.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        volume = x.movedim(2 + self.axis, 2)  # (B, C, S, H, W): slices first
        b, c, s = volume.shape[:3]
        slices = volume.transpose(1, 2).reshape(b * s, c, *volume.shape[3:])
        tokens = self.project(self.backbone(slices)).view(b, s, -1)
        tokens = self.dropout(tokens + self.position[:s])
        weights = torch.softmax(self.score(tokens), dim=1)
        pooled = (weights * tokens).sum(dim=1, keepdim=True)
        out, _ = self.attention(self.query(pooled), self.key(tokens), self.value(tokens), need_weights=False)
        return self.norm(out[:, 0])


def _backbone_2d(config: SemanticConfig) -> tuple[nn.Module, int]:
    if config.backbone == "cnn":
        return _cnn(1, config.channels, spatial_dims=2), config.channels[-1]
    if config.backbone.startswith("timm:"):
        import timm

        model = timm.create_model(config.backbone.removeprefix("timm:"), pretrained=False, in_chans=1,
                                  num_classes=0)
        from medprobe.models.timm_any import as_timm_model

        return model, int(as_timm_model(model).num_features)
    raise ValueError(f"semantic.backbone must be 'cnn' or 'timm:<name>', got {config.backbone!r}")


def _sinusoidal(length: int, dim: int) -> torch.Tensor:
    position = torch.arange(length).float()[:, None]
    freq = torch.exp(torch.arange(0, dim, 2).float() * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return table


def build_semantic_encoder(config: SemanticConfig, size: tuple[int, int, int]) -> nn.Module:
    if config.kind == "cnn3d":
        return SemanticEncoder3D(config, size)
    return SemanticEncoder25D(config, slices=size[config.slice_axis])
