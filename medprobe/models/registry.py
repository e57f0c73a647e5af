"""The model registry: zoo names to builder functions, in the spirit of timm's `create_model`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from medprobe.errors import MedprobeError
from medprobe.models.cards import ModelCard, load_card
from medprobe.models.encoder import Encoder
from medprobe.models.hf_vision import PREFIX as HF_PREFIX
from medprobe.models.hf_vision import build_hf, hf_card
from medprobe.models.timm_any import PREFIX as TIMM_PREFIX
from medprobe.models.timm_any import build_timm, timm_card

Builder = Callable[..., Encoder]
_BUILDERS: dict[str, Builder] = {}


def register_model(*names: str) -> Callable[[Builder], Builder]:
    """Register a builder `fn(name, weights, **options) -> Encoder` under one or more zoo names."""

    def decorator(fn: Builder) -> Builder:
        for name in names:
            if name in _BUILDERS:
                raise RuntimeError(f"model name {name!r} registered twice")
            _BUILDERS[name] = fn
        return fn

    return decorator


def available_models() -> list[str]:
    return sorted(_BUILDERS)


def model_card(name: str) -> ModelCard:
    if name.startswith(TIMM_PREFIX):
        return timm_card(name)
    if name.startswith(HF_PREFIX):
        return hf_card(name)
    _require_known(name)
    return load_card(name)


def load_encoder(name: str, weights: str | Path | None = None, **options: Any) -> Encoder:
    """Build a zoo model, any timm architecture as `timm:<name>`, or any Hugging Face vision backbone on local disk
    as `hf:<folder>` / `hf:<org>/<name>` (for `hf:`, `weights` names the model folder; see `hf_vision.py`).

    With `weights` None a zoo or timm network is randomly initialised: the control every probing study needs, never
    a result about the pretrained model (the encoder's `weights_label` says 'random-init'). An `hf:` model reads its
    folder instead; its control is option `random_init: true`.
    """
    path = Path(weights) if weights is not None else None
    if name.startswith(TIMM_PREFIX):
        return build_timm(name, path, **options)
    if name.startswith(HF_PREFIX):
        return build_hf(name, path, **options)
    _require_known(name)
    return _BUILDERS[name](name, path, **options)


def _require_known(name: str) -> None:
    if name not in _BUILDERS:
        raise MedprobeError(
            f"unknown model '{name}'; available: {', '.join(available_models())}, timm:<any timm model>, "
            "or hf:<folder or org/name>"
        )
