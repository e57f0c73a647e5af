"""A frozen timm ViT built for one fixed input size: what the DINOv2 and RETFound adapters return."""

from __future__ import annotations

from typing import Any

import timm
import torch
from timm.models.eva import Eva
from timm.models.vision_transformer import VisionTransformer

from medprobe.errors import MedprobeError
from medprobe.models.encoder import TorchEncoder
from medprobe.preprocess.input_spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec


class ViTEncoder(TorchEncoder):
    """`pooling` is "cls+mean" (final-norm CLS followed by the mean final-norm patch token, as DINOv2's linear
    evaluation) or any pooling the timm module computes itself in `module(x)` (its `global_pool`, `norm`,
    `fc_norm`); `embedding` says in words what that is and goes into the architecture string.

    The position embeddings were resampled once, at build time, to `input_size` with `pos_method`
    (see `vit_position.py`); inputs of another size are refused rather than silently re-interpolated.
    """

    module: VisionTransformer | Eva

    def __init__(self, name: str, module: VisionTransformer | Eva, timm_name: str, *, pooling: str, embedding: str,
                 pos_method: str, input_size: int, weights_sha256: str | None, seed: int) -> None:
        super().__init__(module)
        self.name = name
        self.timm_name = timm_name
        self.pooling = pooling
        self.embedding = embedding
        self.pos_method = pos_method
        self.input_size = input_size
        width = int(module.embed_dim)
        self.embed_dim = width * (2 if pooling == "cls+mean" else 1)
        self.token_dim = width
        self.preprocessing = InputSpec(2, (input_size, input_size), 3, IMAGENET_MEAN, IMAGENET_STD, "bicubic")
        self.weights_sha256 = weights_sha256
        self.options = {"pooling": pooling, "input_size": input_size}
        if weights_sha256 is None:
            self.options["init_seed"] = seed

    @property
    def position(self) -> str:
        """How the network knows where a patch is, as the architecture string records it."""
        return f"pos_embed:{self.pos_method}"

    @property
    def architecture(self) -> str:
        return f"timm:{self.timm_name}/{self.position}/{self.embedding}"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self._pool(self._features(x))

    def encode_with_tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self._features(x)
        return self._pool(features), features[:, self.module.num_prefix_tokens :]

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, prefix + patches, width): CLS, registers and patch tokens after the last block (and the final norm
        where the model has one before pooling)."""
        if tuple(x.shape[-2:]) != (self.input_size, self.input_size) or x.ndim != 4:
            raise MedprobeError(
                f"model '{self.name}' was built for (B, 3, {self.input_size}, {self.input_size}) inputs, got "
                f"{tuple(x.shape)}; set its option input_size to the size you feed it"
            )
        return self.module.forward_features(x)

    def _pool(self, features: torch.Tensor) -> torch.Tensor:
        if self.pooling != "cls+mean":
            return self.module.forward_head(features)  # timm's own pooling and fc_norm: exactly module(x)
        patches = features[:, self.module.num_prefix_tokens :]
        return torch.cat([features[:, 0], patches.mean(dim=1)], dim=1)


def check_vit_options(name: str, pooling: str, poolings: dict[str, str], input_size: Any, patch: int,
                      unknown: dict[str, Any]) -> int:
    """The options every ViT entry takes (pooling, input_size, seed; pooling only where there is a choice): refuse
    unknown ones, an unknown pooling and an input size that is no multiple of the patch; return the input size."""
    if unknown:
        known = "pooling, input_size, seed" if len(poolings) > 1 else "input_size, seed"
        raise MedprobeError(f"model '{name}': unknown option(s) {sorted(unknown)}; known: {known}")
    if pooling not in poolings:
        raise MedprobeError(f"model '{name}': pooling must be one of {tuple(poolings)}, got {pooling!r}")
    size = int(input_size)
    if size <= 0 or size % patch:
        raise MedprobeError(f"model '{name}': input_size must be a multiple of the patch size {patch}, got {size}")
    return size


def create_vit(timm_name: str, *, for_loading: bool, seed: int, **kwargs: Any) -> VisionTransformer:
    """Build the timm module: randomly initialised from `seed`, or (`for_loading`) as uninitialised memory that
    a strict load then fills completely — initialising a ViT-g on CPU only to overwrite it takes minutes.
    A module with buffers outside its state dict is always initialised normally."""
    if for_loading:
        with torch.device("meta"):
            module = timm.create_model(timm_name, pretrained=False, **kwargs)
        persistent = set(module.state_dict())
        if all(name in persistent for name, _ in module.named_buffers()):
            return as_vit(module.to_empty(device="cpu"), timm_name)
    with torch.random.fork_rng(devices=[]):  # seeded from `seed`, leaving the caller's random state alone
        torch.manual_seed(seed)
        return as_vit(timm.create_model(timm_name, pretrained=False, **kwargs), timm_name)


def as_vit(module: torch.nn.Module, timm_name: str) -> VisionTransformer:
    """`timm.create_model` is typed to return any Module; the ViT adapters need timm's VisionTransformer."""
    if not isinstance(module, VisionTransformer):
        raise MedprobeError(f"timm model '{timm_name}' is a {type(module).__name__}, not a VisionTransformer")
    return module
