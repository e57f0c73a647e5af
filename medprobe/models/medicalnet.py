"""MedicalNet (Chen, Ma & Zheng 2019): 3D ResNets pretrained by segmentation on 23 public CT and MRI datasets.

The network follows Tencent/MedicalNet's `models/resnet.py`, the authors' forward, which is not torchvision's or
MONAI's ResNet: a 7³ stride-2 stem and a max pool, then layer1 (64) and layer2 (128, stride 2) as usual, but layer3
(256) and layer4 (512) keep stride 1 and dilate their 3³ convolutions by 2 and 4 (a segmentation backbone of
output stride 8). Shortcut type A (average-pool subsampling, zero channels appended: no parameters) for depths 18
and 34, B (1³ convolution without bias, batch norm) for 10, 50, 101, 152 and 200, as the authors' README pairs
them with the published files. The segmentation head (`conv_seg`) is not part of the encoder; the embedding is the
global average of layer4's map (512 values for depths 10–34, 2048 from 50 on, the bottleneck's expansion of 4).

Published files (`resnet_<depth>.pth`, `resnet_<depth>_23dataset.pth`) hold {"state_dict": {"module.<key>": ...}}
with the `conv_seg.*` head; `medicalnet_state` is the one adapter onto this module's keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from medprobe.errors import MedprobeError
from medprobe.models.registry import register_model
from medprobe.models.volume_encoder import CubeEncoder
from medprobe.models.weights import load_published

#: depth → (block, blocks per layer, shortcut type) as the authors publish them.
DEPTHS: dict[int, tuple[str, tuple[int, int, int, int], str]] = {
    10: ("basic", (1, 1, 1, 1), "B"),
    18: ("basic", (2, 2, 2, 2), "A"),
    34: ("basic", (3, 4, 6, 3), "A"),
    50: ("bottleneck", (3, 4, 6, 3), "B"),
    101: ("bottleneck", (3, 4, 23, 3), "B"),
    152: ("bottleneck", (3, 8, 36, 3), "B"),
    200: ("bottleneck", (3, 24, 36, 3), "B"),
}
#: (planes, stride, dilation) of layer1..layer4.
LAYERS = ((64, 1, 1), (128, 2, 1), (256, 1, 2), (512, 1, 4))
HEAD_PREFIX = "conv_seg."
INPUT_SIZE = 96


class _ShortcutA(nn.Module):
    """Subsample by `stride` and append zero channels up to `planes` (no parameters)."""

    def __init__(self, planes: int, stride: int) -> None:
        super().__init__()
        self.planes = planes
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.avg_pool3d(x, kernel_size=1, stride=self.stride)
        return F.pad(out, (0, 0, 0, 0, 0, 0, 0, self.planes - out.shape[1]))


def _shortcut(kind: str, inplanes: int, planes: int, stride: int) -> nn.Module:
    if kind == "A":
        return _ShortcutA(planes, stride)
    return nn.Sequential(nn.Conv3d(inplanes, planes, kernel_size=1, stride=stride, bias=False), nn.BatchNorm3d(planes))


class _Basic(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int, dilation: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class _Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int, dilation: int, downsample: nn.Module | None) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(planes * 4)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class MedicalNetResNet(nn.Module):
    """The authors' ResNet without its segmentation head; `forward` returns layer4's feature map."""

    def __init__(self, depth: int) -> None:
        super().__init__()
        kind, blocks, shortcut = DEPTHS[depth]
        block = _Basic if kind == "basic" else _Bottleneck
        self.conv1 = nn.Conv3d(1, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm3d(64)
        self.maxpool = nn.MaxPool3d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for index, ((planes, stride, dilation), count) in enumerate(zip(LAYERS, blocks, strict=True), start=1):
            downsample = None
            if stride != 1 or inplanes != planes * block.expansion:
                downsample = _shortcut(shortcut, inplanes, planes * block.expansion, stride)
            layer = [block(inplanes, planes, stride, dilation, downsample)]
            inplanes = planes * block.expansion
            layer += [block(inplanes, planes, 1, dilation, None) for _ in range(count - 1)]
            self.add_module(f"layer{index}", nn.Sequential(*layer))
        self.out_channels = inplanes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        for index in range(1, 5):
            x = getattr(self, f"layer{index}")(x)
        return x


class MedicalNetEncoder(CubeEncoder):
    """Global average of layer4's map. The authors z-score each volume over its non-zero voxels: the spec's
    intensity step does that (`intensity: {mode: zscore}`)."""

    def __init__(self, name: str, depth: int, module: MedicalNetResNet, input_size: int,
                 weights_sha256: str | None, seed: int) -> None:
        super().__init__(name, module, input_size, {}, weights_sha256, seed)
        self.depth = depth
        self.embed_dim = module.out_channels

    @property
    def architecture(self) -> str:
        return f"medicalnet:resnet{self.depth}(dilated layer3/4)/gap"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.module(x).mean(dim=(2, 3, 4))


def medicalnet_state(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The published layout onto `MedicalNetResNet` keys: the `state_dict` wrapper and DataParallel's `module.`
    removed, the segmentation head dropped. Everything else must fit strictly."""
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    return {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIX)}


def _build(name: str, depth: int, weights: Path | None, input_size: int, seed: int,
           unknown: dict[str, Any]) -> MedicalNetEncoder:
    if unknown:
        raise MedprobeError(f"model '{name}': unknown option(s) {sorted(unknown)}; known: input_size, seed")
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < 16:
        raise MedprobeError(f"model '{name}': input_size must be an integer of at least 16, got {input_size!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = MedicalNetResNet(depth)
    sha = load_published(module, weights, name, medicalnet_state)
    return MedicalNetEncoder(name, depth, module, input_size, sha, seed)


def _register(depth: int) -> None:
    name = f"medicalnet_resnet{depth}"

    @register_model(name)
    def build(name: str, weights: Path | None, input_size: int = INPUT_SIZE, seed: int = 0,
              **unknown: Any) -> MedicalNetEncoder:
        return _build(name, depth, weights, input_size, seed, unknown)


for _depth in DEPTHS:
    _register(_depth)
