"""Steps on model-ready tensors: square padding and resizing, channel count, mean/std normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_square(view: torch.Tensor) -> torch.Tensor:
    """Pad (C, *spatial) symmetrically with its minimum so that every spatial side is equal.

    Keeps the whole field of view and the aspect ratio, instead of cropping away anatomy or stretching it.
    """
    spatial = view.shape[1:]
    side = max(spatial)
    if all(s == side for s in spatial):
        return view
    pads: list[int] = []
    for s in reversed(spatial):
        total = side - s
        pads += [total // 2, total - total // 2]
    return F.pad(view, pads, mode="constant", value=float(view.min()))


def letterbox(view: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """(C, H, W) → (C, *size): the longest side resized to the size's (bilinear, antialiased, as torchvision's
    `Resize(antialias=True)` on tensors), the other by the same factor (truncated), then zeros padded at the right
    and bottom. FLAIR's `preprocess_image` exactly: its model saw fundus photographs that way."""
    height, width = view.shape[-2:]
    scale = max(height, width) / max(size)
    target = (int(height / scale), int(width / scale))
    resized = F.interpolate(view[None].float(), size=target, mode="bilinear", align_corners=False, antialias=True)[0]
    return F.pad(resized, (0, size[-1] - target[1], 0, size[-2] - target[0]))


def resize(batch: torch.Tensor, size: tuple[int, ...], interpolation: str) -> torch.Tensor:
    """Resize (V, C, *spatial) to `size`; 2D downsampling is antialiased, 3D uses trilinear."""
    if tuple(batch.shape[2:]) == tuple(size):
        return batch
    if len(size) == 3:
        return F.interpolate(batch, size=size, mode="trilinear", align_corners=False)
    mode = interpolation if interpolation in {"bilinear", "bicubic"} else "bilinear"
    out = F.interpolate(batch, size=size, mode=mode, align_corners=False, antialias=True)
    return out.clamp(float(batch.min()), float(batch.max())) if mode == "bicubic" else out


def match_channels(batch: torch.Tensor, channels: int) -> torch.Tensor:
    """Grayscale to RGB by repetition; RGB to grayscale by ITU-R 601 luma."""
    have = batch.shape[1]
    if have == channels:
        return batch
    if have == 1:
        return batch.expand(-1, channels, *batch.shape[2:]).contiguous()
    if have == 3 and channels == 1:
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=batch.dtype).view(1, 3, *([1] * (batch.ndim - 2)))
        return (batch * weights).sum(dim=1, keepdim=True)
    raise ValueError(f"cannot turn {have} channels into {channels}")


def normalise(batch: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    shape = (1, -1, *([1] * (batch.ndim - 2)))
    return (batch - torch.tensor(mean).view(shape)) / torch.tensor(std).view(shape)
