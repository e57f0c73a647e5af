"""FLAIR (Silva-Rodríguez et al., Medical Image Analysis 2025): a vision-language model of retinal fundus
photographs, CLIP-style with expert-knowledge text prompts.

The authors' `flair/modeling/model.py` (written here once with torchvision's parts, not imported: the package
downloads its weights from Google Drive and BERT from the hub when built): the image side is torchvision's
ResNet-50 with its classifier removed (2048 features), then `ProjectionLayer`: L2-normalise, a bias-free linear map to
512, L2-normalise. The embedding is that joint-space vector by default (`pooling: projection`, what zero-shot needs
and what the authors' `vision_model` returns); `pooling: backbone` gives the 2048 ResNet features. The text side
(Bio_ClinicalBERT, the mean over tokens of hidden layers 1, 2 and the last, averaged, then the same projection
layer) is `medprobe.models.text_tower.flair_text_tower`. Images: the authors' `preprocess_image` (intensities / 255,
the longest side resized to 512 keeping the aspect, zeros padded right and bottom; no mean/std normalisation).
The published `flair_resnet.pth` is the whole model's state dict: `vision_model.*`, `text_model.*`, `logit_scale`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torchvision
from torch import nn

from medprobe.errors import MedprobeError
from medprobe.models.cards import load_card
from medprobe.models.encoder import TorchEncoder
from medprobe.models.registry import register_model
from medprobe.models.weights import load_published
from medprobe.preprocess.input_spec import InputSpec

if TYPE_CHECKING:
    from medprobe.models.text_tower import TextTower

IMAGE_SIZE = 512
PROJECTION_DIM = 512
POOLINGS = ("projection", "backbone")
VISION_PREFIX = "vision_model."


class Projection(nn.Module):
    """The linear map of the authors' `ProjectionLayer`, under its parameter name `projection`."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.projection = nn.Linear(width, PROJECTION_DIM, bias=False)


class FLAIRVision(nn.Module):
    """The authors' `VisionModel` with their parameter names: `model` (ResNet-50, fc removed) and
    `projection_head_vision.projection` (the bias-free linear map of their `ProjectionLayer`)."""

    def __init__(self) -> None:
        super().__init__()
        self.model = torchvision.models.resnet50(weights=None)
        self.model.fc = nn.Identity()
        self.projection_head_vision = Projection(2048)

    def forward(self, x: torch.Tensor, project: bool = True) -> torch.Tensor:
        features = self.model(x)
        if not project:
            return features
        return project_normalised(features, self.projection_head_vision.projection)


def project_normalised(x: torch.Tensor, projection: nn.Module) -> torch.Tensor:
    """The authors' `ProjectionLayer` with projection and normalisation on: normalise, project, normalise."""
    x = x / x.norm(dim=-1, keepdim=True)
    x = projection(x)
    return x / x.norm(dim=-1, keepdim=True)


class FLAIREncoder(TorchEncoder):
    embed_dim: int

    def __init__(self, name: str, module: FLAIRVision, pooling: str, weights_sha256: str | None, seed: int,
                 text_source: tuple[Path, Path | None] | None) -> None:
        super().__init__(module)
        self.name = name
        self.pooling = pooling
        self.embed_dim = PROJECTION_DIM if pooling == "projection" else 2048
        self.preprocessing = InputSpec(2, (IMAGE_SIZE, IMAGE_SIZE), 3, None, None, "bilinear", fit="letterbox")
        self.weights_sha256 = weights_sha256
        self.options: dict[str, Any] = {"pooling": pooling}
        if weights_sha256 is None:
            self.options["init_seed"] = seed
        self.text_source = text_source
        self.zero_shot_templates = tuple(load_card(name).zero_shot_templates)

    @property
    def architecture(self) -> str:
        return f"flair:resnet50/{'L2-linear512-L2' if self.pooling == 'projection' else 'gap2048'}"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise MedprobeError(f"model '{self.name}' takes (B, 3, H, W) images, got {tuple(x.shape)}")
        return self.module(x, project=self.pooling == "projection")

    @property
    def has_text_tower(self) -> bool:
        return self.text_source is not None and self.pooling == "projection"

    def text_tower(self) -> TextTower:
        from medprobe.models.text_tower import flair_text_tower

        if self.text_source is None:
            raise self.random_init_has_no_text_tower()
        if self.pooling != "projection":
            raise MedprobeError(f"model '{self.name}' with pooling {self.pooling}: the backbone features are not in "
                                "the text tower's space; zero-shot needs pooling: projection")
        weights, text_folder = self.text_source
        return flair_text_tower(weights, self.name, text_folder)


def flair_vision_state(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The image side of the published whole-model state dict (text side and logit scale dropped)."""
    state = state.get("state_dict", state)
    return {k.removeprefix(VISION_PREFIX): v for k, v in state.items() if k.startswith(VISION_PREFIX)}


@register_model("flair")
def build_flair(name: str, weights: Path | None, pooling: str = "projection", text_model: str | None = None,
                seed: int = 0, **unknown: Any) -> FLAIREncoder:
    """`text_model`: a local copy of Bio_ClinicalBERT (config and tokenizer) for zero-shot; without it the local hub
    cache is looked up."""
    if unknown:
        raise MedprobeError(f"model '{name}': unknown option(s) {sorted(unknown)}; known: pooling, text_model, seed")
    if pooling not in POOLINGS:
        raise MedprobeError(f"model '{name}': pooling must be one of {POOLINGS}, got {pooling!r}")
    if text_model is not None and not Path(text_model).is_dir():
        raise MedprobeError(f"model '{name}': option text_model {text_model} is not a folder (it should hold "
                            "Bio_ClinicalBERT's config.json and tokenizer files)")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = FLAIRVision()
    sha = load_published(module, weights, name, flair_vision_state)
    text_source = (weights, Path(text_model) if text_model else None) if weights is not None else None
    return FLAIREncoder(name, module, pooling, sha, seed, text_source)
