"""The encoder protocol every zoo model implements: frozen, batched, fingerprinted."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import torch

from medprobe.errors import MedprobeError
from medprobe.preprocess.input_spec import InputSpec

if TYPE_CHECKING:
    from medprobe.models.text_tower import TextTower


class Encoder(ABC):
    """A frozen feature extractor.

    `encode(x)` takes a batch shaped as `preprocessing` produces it — (B, C, H, W) for 2D models, (B, C, X, Y, Z)
    for 3D ones — and returns float embeddings (B, embed_dim). `weights_sha256` is None for a random-init network:
    its numbers are a smoke test or a control, never a model evaluation.
    """

    name: str
    embed_dim: int
    preprocessing: InputSpec
    weights_sha256: str | None
    options: dict[str, Any]
    #: Width of the patch tokens `encode_with_tokens` returns; None for encoders without tokens.
    token_dim: int | None = None
    #: The zero-shot templates the model's authors publish (`{}` is the class prompt); empty: none published.
    zero_shot_templates: tuple[str, ...] = ()

    @property
    def pretrained(self) -> bool:
        return self.weights_sha256 is not None

    @property
    def weights_label(self) -> str:
        return f"sha256:{self.weights_sha256}" if self.weights_sha256 else "random-init"

    @property
    def fingerprint(self) -> str:
        """Stable identity of what this encoder computes: architecture, weights, options, preprocessing."""
        payload = {
            "name": self.name,
            "architecture": self.architecture,
            "weights": self.weights_label,
            "options": self.options,
            "input": self.preprocessing.describe(),
        }
        digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
        return f"{self.name}-{digest[:16]}"

    @property
    @abstractmethod
    def architecture(self) -> str:
        """A short identifier of the network layout (timm name and embedding definition, or feature version)."""

    @abstractmethod
    def encode(self, x: torch.Tensor) -> torch.Tensor: ...

    def encode_with_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`encode(x)` and the (B, T, token_dim) patch tokens it was pooled from, in one forward pass: the input
        of the attentive probe. Only for encoders whose `token_dim` is set."""
        raise MedprobeError(f"model '{self.name}' does not expose patch tokens; the attentive probe needs a "
                            "transformer or CNN encoder (DINOv2, RETFound, timm:..., monai_vit3d)")

    @property
    def has_text_tower(self) -> bool:
        """Whether `text_tower()` can give one (a vision-language model built with its weights)."""
        return False

    def random_init_has_no_text_tower(self) -> MedprobeError:
        """The error of a vision-language model built without weights: nothing to embed class prompts with."""
        return MedprobeError(f"model '{self.name}' was built without weights (random init): it has no text tower "
                             "to classify zero-shot with")

    def text_tower(self) -> TextTower:
        """The model's own text tower, for the zero-shot protocol (vision-language models only)."""
        raise MedprobeError(f"model '{self.name}' has no text tower: zero-shot classification needs a "
                            "vision-language model (MedSigLIP, SigLIP, an hf: SigLIP folder) with its weights")

    def to(self, device: torch.device) -> Encoder:
        return self

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")


class TorchEncoder(Encoder):
    """An encoder backed by one frozen torch module in eval mode."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module.eval().requires_grad_(False)

    def to(self, device: torch.device) -> TorchEncoder:
        self.module.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.module.parameters()).device
