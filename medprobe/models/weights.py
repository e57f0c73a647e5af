"""Reading checkpoint files safely: safetensors or torch's weights-only unpickler, never arbitrary objects."""

from __future__ import annotations

import argparse
import hashlib
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from medprobe.errors import WeightsError
from medprobe.models.cards import ModelCard, load_card

_CHUNK = 1 << 22
#: No encoder's weights fit in 1 KiB: a smaller file is a truncated download or an error page.
MIN_WEIGHTS_BYTES = 1024
#: The first byte of a pickle of protocol 2 or later: torch.save's format before PyTorch 1.6.
_PICKLE_PROTOCOL = b"\x80"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_weights_file(path: Path, card: ModelCard) -> list[str]:
    """The checks a dry run can afford on a weights file without unpickling or loading it; what each found, or a
    WeightsError for the first problem (a truncated download, an HTML error page, a different release)."""
    size = path.stat().st_size
    if size < MIN_WEIGHTS_BYTES:
        raise WeightsError(f"{path}: {size} bytes, too small to be any model's weights (an interrupted download "
                           f"or an error page?); expected {card.checkpoint_file} from {card.source}")
    done = [f"{size / 1e6:.1f} MB", _format_check(path)]
    if card.sha256:
        sha = sha256_of(path)
        if sha != card.sha256:
            raise WeightsError(f"{path}: sha256 {sha[:12]}… does not match the card's {card.sha256[:12]}… for "
                               f"'{card.name}' (expected {card.checkpoint_file} from {card.source})")
        done.append("sha256 matches the card")
    else:
        done.append("sha256 not checked: the card records none")
    return done


def _format_check(path: Path) -> str:
    """Safetensors: the header parses and its tensors fit the file. Anything else: a torch zip archive with a
    pickle inside, opened as a zip only (the pickle is unpickled, weights-only, when the job loads it)."""
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as handle:
                count = len(list(handle.keys()))
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types for a bad header
            raise WeightsError(f"{path}: not a safetensors file ({str(exc).splitlines()[0][:200]})") from None
        return f"safetensors header lists {count} tensors"
    try:
        with zipfile.ZipFile(path) as archive:
            if any(name.endswith("data.pkl") for name in archive.namelist()):
                return "torch zip archive opens"
    except zipfile.BadZipFile:
        with path.open("rb") as handle:
            if handle.read(1) == _PICKLE_PROTOCOL:
                return "legacy torch file (a bare pickle): its format is checked only when the job loads it"
    raise WeightsError(f"{path}: neither a torch checkpoint (torch.save's zip archive with data.pkl, or its "
                       "legacy pickle) nor a .safetensors file")


def read_checkpoint(path: Path, card: ModelCard) -> tuple[dict[str, Any], str]:
    """Load a state dict (or a dict holding one) and its sha256, checked against the card when it has one."""
    if not path.is_file():
        raise WeightsError(
            f"weights file not found: {path} (model '{card.name}' expects {card.checkpoint_file}; "
            f"get it from {card.source})"
        )
    sha = sha256_of(path)
    if card.sha256 and sha != card.sha256:
        raise WeightsError(
            f"{path}: sha256 {sha[:12]}… does not match the card's {card.sha256[:12]}… for '{card.name}'; "
            f"the file is corrupt or a different release (expected {card.checkpoint_file} from {card.source})"
        )
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            # Training checkpoints (MAE, RETFound) carry their argparse options next to the weights: a plain
            # container that is safe to allow; any other object is still refused by the weights-only unpickler.
            with torch.serialization.safe_globals([argparse.Namespace]):
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors vary; all mean "not a safe tensor file"
        raise WeightsError(
            f"{path}: not a loadable weights file ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); "
            "medprobe reads safetensors or torch state dicts with tensors only"
        ) from None
    if not isinstance(state, dict):
        raise WeightsError(f"{path}: expected a state dict, found {type(state).__name__}")
    return state, sha


def load_published(module: torch.nn.Module, weights: Path | None, model_name: str,
                   adapter: Callable[[dict[str, Any]], dict[str, torch.Tensor]]) -> str | None:
    """Read `weights` with the model card's checks, map it onto `module`'s keys with `adapter` (the one adapter per
    upstream layout) and load it strictly; its sha256, or None for a random-init network (no weights)."""
    if weights is None:
        return None
    state, sha = read_checkpoint(weights, load_card(model_name))
    load_strict(module, adapter(state), weights, model_name)
    return sha


def load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, model_name: str) -> None:
    """Load every tensor or none: a silently random layer produces a plausible, wrong evaluation.

    Missing keys, unexpected keys and shape mismatches are all listed in one error.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k} {tuple(state[k].shape)}≠{tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or mismatched:
        parts = [f"{label}: {_show(keys)}" for label, keys in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", mismatched)) if keys]
        raise WeightsError(f"{path}: does not fit '{model_name}' ({'; '.join(parts)}); is it the right architecture?")
    module.load_state_dict(state, strict=True)


def _show(keys: list[str]) -> str:
    head = ", ".join(keys[:8])
    return head + (f", … ({len(keys)} in all)" if len(keys) > 8 else "")
