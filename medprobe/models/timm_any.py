"""Any timm architecture by name (`timm:<model>`), pooled the way timm pools it, with timm's own input config."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import timm
import torch

from medprobe.errors import MedprobeError
from medprobe.models.cards import ModelCard
from medprobe.models.encoder import TorchEncoder
from medprobe.models.weights import load_strict, read_checkpoint
from medprobe.preprocess.input_spec import InputSpec

PREFIX = "timm:"


@runtime_checkable
class TimmModel(Protocol):
    """What `timm.create_model` sets on every model it builds (it is typed to return a bare Module)."""

    pretrained_cfg: dict[str, Any]
    num_features: int


@runtime_checkable
class TimmFeatures(Protocol):
    """timm's split forward: `forward_head(forward_features(x))` is `module(x)`."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor: ...

    def forward_head(self, x: torch.Tensor) -> torch.Tensor: ...


def as_timm_model(module: torch.nn.Module) -> TimmModel:
    if not isinstance(module, TimmModel):
        raise MedprobeError(f"{type(module).__name__} is not a timm model (no pretrained_cfg / num_features)")
    return module


class TimmEncoder(TorchEncoder):
    """The pre-logits features of a timm model (`num_classes=0`): its own global pooling and final norm."""

    def __init__(self, name: str, timm_name: str, module: torch.nn.Module, input_size: int,
                 weights_sha256: str | None, seed: int) -> None:
        super().__init__(module)
        described = as_timm_model(module)
        cfg = described.pretrained_cfg
        self.name = name
        self.timm_name = timm_name
        self.embed_dim = int(described.num_features)
        self.token_dim = self.embed_dim
        self.preprocessing = InputSpec(2, (input_size, input_size), int(cfg.get("input_size", (3,))[0]),
                                       tuple(cfg.get("mean", (0.5, 0.5, 0.5))), tuple(cfg.get("std", (0.5, 0.5, 0.5))),
                                       str(cfg.get("interpolation", "bicubic")))
        self.weights_sha256 = weights_sha256
        self.options = {"input_size": input_size}
        if weights_sha256 is None:
            self.options["init_seed"] = seed

    @property
    def architecture(self) -> str:
        return f"timm:{self.timm_name}/pre-logits"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)

    def encode_with_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens are the last feature map's positions (CNNs) or the patch tokens after the prefix (ViTs)."""
        if not isinstance(self.module, TimmFeatures):
            raise MedprobeError(f"model '{self.name}': {type(self.module).__name__} has no forward_features / "
                                "forward_head, so no tokens")
        features = self.module.forward_features(x)
        pooled = self.module.forward_head(features)
        if features.ndim == 4:  # (B, C, H, W)
            return pooled, features.flatten(2).transpose(1, 2)
        if features.ndim == 3:  # (B, prefix + patches, C)
            return pooled, features[:, int(getattr(self.module, "num_prefix_tokens", 0)) :]
        raise MedprobeError(f"model '{self.name}': features of shape {tuple(features.shape)} have no token layout")


def build_timm(name: str, weights: Path | None, input_size: int | None = None, seed: int = 0,
               **unknown: Any) -> TimmEncoder:
    timm_name = name.removeprefix(PREFIX)
    if unknown:
        raise MedprobeError(f"model '{name}': unknown option(s) {sorted(unknown)}; known: input_size, seed")
    if not timm.is_model(timm_name):
        raise MedprobeError(f"model '{name}': timm has no architecture '{timm_name}' (see timm.list_models())")
    with torch.random.fork_rng(devices=[]):  # seeded from `seed`, leaving the caller's random state alone
        torch.manual_seed(seed)
        module = timm.create_model(timm_name, pretrained=False, num_classes=0)
    cfg = as_timm_model(module).pretrained_cfg
    size = int(input_size or cfg.get("input_size", (3, 224, 224))[-1])
    sha = None
    if weights is not None:
        state, sha = read_checkpoint(weights, timm_card(name))
        state = state.get("state_dict", state.get("model", state))
        head = cfg.get("classifier", "head")
        state = {k: v for k, v in state.items() if not k.startswith(f"{head}.")}
        load_strict(module, state, weights, name)
    return TimmEncoder(name, timm_name, module, size, sha, seed)


def timm_card(name: str) -> ModelCard:
    return ModelCard(
        name=name,
        architecture=f"timm {name.removeprefix(PREFIX)} (pre-logits features)",
        embed_dim=0,
        checkpoint_file="a timm/Hugging Face state dict or safetensors file of this architecture",
        source="the model's Hugging Face hub page (timm/<model>); download it yourself",
        summary="any timm architecture by name; without weights it is a random-init control",
    )
