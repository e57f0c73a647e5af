"""BrainIAC (Tak et al., Nature Neuroscience 2026): MONAI's 3D `ViT` (96³, patch 16, 768 wide, 12 layers) trained
with SimCLR on about 32,000 structural brain MRI volumes.

The authors' `model.py` (`ViTBackboneNet`) builds `monai.networks.nets.ViT` with MONAI's defaults otherwise, loads
the Lightning checkpoint's `backbone.*` keys strictly, and takes `features[0][:, 0]` as the embedding: they call it
the CLS token, but MONAI's ViT without `classification` has none, so it is the first patch token (the top corner of
the volume after all the attention layers). medprobe offers that as the default (`pooling: first`, the authors'
choice) and the mean of all patch tokens (`pooling: mean`) as the conventional alternative. Fine-tuned downstream
checkpoints (`backbone.backbone.*`) load too; the SimCLR projection head is not part of the encoder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from monai.networks.nets import ViT

from medprobe.errors import MedprobeError, WeightsError
from medprobe.models.monai3d import MonaiViTEncoder, seeded_vit, vit_state
from medprobe.models.registry import register_model
from medprobe.models.weights import load_published

ARCH = {"patch_size": 16, "hidden_size": 768, "mlp_dim": 3072, "num_layers": 12, "num_heads": 12}
INPUT_SIZE = 96
POOLINGS = ("first", "mean")
#: Downstream fine-tuned checkpoints wrap the backbone once more; the SimCLR checkpoint has one prefix.
PREFIXES = ("backbone.backbone.", "backbone.")


def brainiac_state(state: dict[str, Any], module: ViT, path: Path | None) -> dict[str, torch.Tensor]:
    """The ViT out of a BrainIAC Lightning checkpoint ({"state_dict": {"backbone.<key>": ...}}), or a bare ViT's."""
    if isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    for prefix in PREFIXES:
        if any(key.startswith(prefix) for key in state):
            state = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
            break
    odd = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if odd:
        raise WeightsError(f"{path}: checkpoint holds non-tensor entries {odd[:5]}; expected BrainIAC's Lightning "
                           "checkpoint (a state_dict of tensors under backbone.)")
    return vit_state(state, module)


@register_model("brainiac")
def build_brainiac(name: str, weights: Path | None, pooling: str = "first", seed: int = 0,
                   **unknown: Any) -> MonaiViTEncoder:
    if unknown:
        raise MedprobeError(f"model '{name}': unknown option(s) {sorted(unknown)}; known: pooling, seed")
    if pooling not in POOLINGS:
        raise MedprobeError(f"model '{name}': pooling must be 'first' (the authors' first patch token) or 'mean' "
                            f"(the mean of all patch tokens), got {pooling!r}")
    module = seeded_vit(ARCH, INPUT_SIZE, seed)
    sha = load_published(module, weights, name, lambda state: brainiac_state(state, module, weights))
    return MonaiViTEncoder(name, module, arch=dict(ARCH), input_size=INPUT_SIZE, weights_sha256=sha, seed=seed,
                           pooling=pooling)
