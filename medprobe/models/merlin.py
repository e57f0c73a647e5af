"""Merlin (Blankemeier et al. 2024, Stanford MIMI): the image encoder of a 3D CT vision-language model trained on
abdominal CT volumes with their EHR codes and radiology reports.

The upstream image encoder (`merlin-vlm`, `merlin/models/i3res.py` and `inflate.py`) is a torchvision ResNet-152
inflated to 3D: a (3, 7, 7) stem of stride (1, 2, 2), a 3³ max pool of stride 2, bottlenecks whose 3³ convolution
carries the stage's stride on all three axes, 1³ shortcuts without bias. That is MONAI's 3D `ResNet` with bottleneck
blocks [3, 8, 36, 3], a (3, 7, 7) stem of stride (1, 2, 2) and bias-free shortcuts, with the same parameter names,
so the network is built from MONAI and the published checkpoint loads onto it key for key. `merlin-vlm` cannot be
used offline: it downloads ImageNet weights and a Clinical-Longformer even for image-only construction.

Upstream's `forward` takes (B, 1, X, Y, Z) volumes in RAS, moves Z (the 160 axis) to the front as the inflated
"time" axis and repeats the one channel three times; the embedding (`ImageEmbedding=True`) is the global average of
the last stage, 2048 values. The published checkpoint is the whole model's state dict (image encoder under
`encode_image.i3_resnet.`, plus the EHR classifier, contrastive head, text encoder and logit scale, all dropped).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from monai.networks.nets.resnet import ResNet, ResNetBottleneck

from medprobe.errors import MedprobeError
from medprobe.models.cards import authors_defaults, load_card
from medprobe.models.encoder import TorchEncoder
from medprobe.models.registry import register_model
from medprobe.models.weights import load_published
from medprobe.preprocess.input_spec import InputSpec

#: The authors' crop/pad size in RAS voxels at 1.5 × 1.5 × 3 mm.
INPUT_SIZE = (224, 224, 160)
IMAGE_PREFIX = "encode_image.i3_resnet."
#: The image encoder's heads in the published checkpoint: not part of the embedding.
HEADS = ("classifier.", "contrastive_head.", "fc.")


def merlin_resnet() -> ResNet:
    """The inflated ResNet-152 of `i3res.I3ResNet`, without its heads."""
    stem_kernel, stem_stride = (3, 7, 7), (1, 2, 2)  # MONAI takes a per-axis tuple; its hint says tuple[int]
    return ResNet(ResNetBottleneck, [3, 8, 36, 3], [64, 128, 256, 512], spatial_dims=3, n_input_channels=3,
                  conv1_t_size=stem_kernel, conv1_t_stride=stem_stride,  # type: ignore[arg-type]
                  shortcut_type="B", feed_forward=False, bias_downsample=False)


class MerlinEncoder(TorchEncoder):
    """(B, 1, 224, 224, 160) RAS volumes, HU [-1000, 1000] scaled to 0–1 → 2048 values."""

    embed_dim = 2048

    def __init__(self, name: str, module: ResNet, weights_sha256: str | None, seed: int) -> None:
        super().__init__(module)
        self.name = name
        self.preprocessing = InputSpec(3, INPUT_SIZE, 1, None, None, "trilinear", authors_defaults(load_card(name)))
        self.weights_sha256 = weights_sha256
        self.options = {} if weights_sha256 is not None else {"init_seed": seed}

    @property
    def architecture(self) -> str:
        return "merlin:I3ResNet152(monai ResNet, stem 3x7x7/1x2x2)/gap-last,z-first,1->3ch"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5 or x.shape[1] != 1 or tuple(x.shape[2:]) != INPUT_SIZE:
            raise MedprobeError(f"model '{self.name}' takes (B, 1, {', '.join(map(str, INPUT_SIZE))}) RAS volumes, "
                                f"got {tuple(x.shape)}")
        return merlin_forward(self.module, x)


def merlin_forward(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Upstream's forward: Z first (the inflated time axis), the channel repeated to three, the pooled last stage."""
    return module(x.permute(0, 1, 4, 2, 3).expand(-1, 3, -1, -1, -1))


def merlin_state(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The image encoder out of the published whole-model state dict (or a bare I3ResNet's), heads dropped."""
    if any(key.startswith(IMAGE_PREFIX) for key in state):
        state = {k.removeprefix(IMAGE_PREFIX): v for k, v in state.items() if k.startswith(IMAGE_PREFIX)}
    return {k: v for k, v in state.items() if not k.startswith(HEADS)}


@register_model("merlin")
def build_merlin(name: str, weights: Path | None, seed: int = 0, **unknown: Any) -> MerlinEncoder:
    if unknown:
        raise MedprobeError(f"model '{name}': unknown option(s) {sorted(unknown)}; known: seed")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = merlin_resnet()
    sha = load_published(module, weights, name, merlin_state)
    return MerlinEncoder(name, module, sha, seed)
