"""CT-FM (Pai et al. 2025, project-lighter): a MONAI `SegResEncoder` self-supervised (intra-sample SimCLR) on
148,000 CT volumes of the Imaging Data Commons.

The upstream feature extractor (`lighter_zoo.SegResEncoder`, Hugging Face `project-lighter/ct_fm_feature_extractor`)
is MONAI's `monai.networks.nets.segresnet_ds.SegResEncoder` (3D, one channel, `init_filters` 32, `blocks_down`
[1, 2, 2, 4, 4], batch norm, ReLU: 77.8 M parameters) with Hugging Face's hub mixin; its `model.safetensors` holds
MONAI's own keys. The embedding is what the authors' example computes: the global average of the last of the five
feature maps (512 values). Lighter training checkpoints (`{"state_dict": {"backbone.<key>": ...}}`) load too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from monai.networks.nets.segresnet_ds import SegResEncoder

from medprobe.errors import MedprobeError
from medprobe.models.registry import register_model
from medprobe.models.volume_encoder import CubeEncoder
from medprobe.models.weights import load_published

ENCODER_ARGS: dict[str, Any] = {"spatial_dims": 3, "in_channels": 1, "init_filters": 32, "blocks_down": (1, 2, 2, 4, 4)}
STRIDE = 16  # four stride-2 stages
INPUT_SIZE = 128
TRAINING_PREFIX = "backbone."


class CTFMEncoder(CubeEncoder):
    """Global average of the deepest SegResEncoder map. HU reach 0-1 through the spec's intensity step (the
    authors: [-1024, 2048], clipped)."""

    embed_dim = ENCODER_ARGS["init_filters"] * 2 ** (len(ENCODER_ARGS["blocks_down"]) - 1)

    @property
    def architecture(self) -> str:
        return "monai:SegResEncoder(init_filters=32,blocks_down=1-2-2-4-4)/gap-last"

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.module(x)[-1].mean(dim=(2, 3, 4))


def ctfm_state(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The published safetensors (MONAI's keys) as they are; a Lighter training checkpoint's `backbone.*` encoder
    with the `state_dict` wrapper removed (its other entries dropped). Everything else must fit strictly."""
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if any(key.startswith(TRAINING_PREFIX) for key in state):
        return {k.removeprefix(TRAINING_PREFIX): v for k, v in state.items() if k.startswith(TRAINING_PREFIX)}
    return state


@register_model("ct_fm")
def build_ct_fm(name: str, weights: Path | None, input_size: int = INPUT_SIZE, seed: int = 0,
                **unknown: Any) -> CTFMEncoder:
    if unknown:
        raise MedprobeError(f"model '{name}': unknown option(s) {sorted(unknown)}; known: input_size, seed")
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size < STRIDE or input_size % STRIDE:
        raise MedprobeError(f"model '{name}': input_size must be a positive multiple of {STRIDE}, got {input_size!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = SegResEncoder(**ENCODER_ARGS)
    sha = load_published(module, weights, name, ctfm_state)
    return CTFMEncoder(name, module, input_size, {}, sha, seed)
