"""RETFound (rmaphoh/RETFound): retinal foundation models, as MAE ViT-L/16 and as DINOv2 ViT-L/14.

`retfound_mae` (colour fundus and OCT releases share the architecture): the embedding is what upstream's
fine-tuning and linear-probing code feeds its head with its default `global_pool=True` — the mean of the 196
patch tokens of the last block (CLS excluded, no final norm) through `fc_norm`. Upstream builds `fc_norm` fresh
(the MAE checkpoint has none) and drops the checkpoint's pretrained `norm`; with a frozen backbone `fc_norm`
stays at its initialisation (weight 1, bias 0), so the faithful feature is LayerNorm-without-affine(eps 1e-6)
of the mean patch token. Option `pooling: cls` is upstream's `--cls_token` mode instead: `global_pool=False`
keeps the model's final `norm`, loaded from the checkpoint, and takes the CLS token after it.

`retfound_dinov2`: timm `vit_large_patch14_dinov2` at 224 px (no registers), as upstream builds it; the
embedding is the final-norm CLS token (timm's default `global_pool='token'`, what upstream fine-tunes on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer

from medprobe.models.cards import load_card
from medprobe.models.dinov2 import fit_pos_embed
from medprobe.models.registry import register_model
from medprobe.models.vit_encoder import ViTEncoder, check_vit_options, create_vit
from medprobe.models.weights import load_strict, read_checkpoint

MAE_TIMM = "vit_large_patch16_224"
DINOV2_TIMM = "vit_large_patch14_dinov2"
MAE_POOLING = {
    "mean": "fc_norm(mean patch token), fc_norm at init (1,0), pretrained norm unused",
    "cls": "pretrained final-norm CLS",
}
# RETFound's util/pos_embed.interpolate_pos_embed: bicubic to the new size, no antialias. It is what upstream
# applies to both checkpoint kinds when their grid differs from the model's.
POS_METHOD = "mae"
DEFAULT_SIZE = 224


@register_model("retfound_mae")
def build_retfound_mae(name: str, weights: Path | None, pooling: str = "mean", input_size: int = DEFAULT_SIZE,
                       seed: int = 0, **unknown: Any) -> ViTEncoder:
    input_size = check_vit_options(name, pooling, MAE_POOLING, input_size, 16, unknown)
    module = create_vit(MAE_TIMM, for_loading=weights is not None, seed=seed, num_classes=0, img_size=input_size,
                        global_pool="avg" if pooling == "mean" else "token")
    sha = None
    if weights is not None:
        state, sha = read_checkpoint(weights, load_card(name))
        load_strict(module, mae_to_timm(state, module, pooling), weights, name)
    return ViTEncoder(name, module, MAE_TIMM, pooling=pooling, embedding=MAE_POOLING[pooling], pos_method=POS_METHOD,
                      input_size=input_size, weights_sha256=sha, seed=seed)


@register_model("retfound_dinov2")
def build_retfound_dinov2(name: str, weights: Path | None, input_size: int = DEFAULT_SIZE, seed: int = 0,
                          **unknown: Any) -> ViTEncoder:
    input_size = check_vit_options(name, "cls", {"cls": ""}, input_size, 14, unknown)
    module = create_vit(DINOV2_TIMM, for_loading=weights is not None, seed=seed, num_classes=0, img_size=input_size)
    sha = None
    if weights is not None:
        state, sha = read_checkpoint(weights, load_card(name))
        load_strict(module, dinov2_teacher_to_timm(state, module), weights, name)
    return ViTEncoder(name, module, DINOV2_TIMM, pooling="cls", embedding="final-norm CLS", pos_method=POS_METHOD,
                      input_size=input_size, weights_sha256=sha, seed=seed)


def mae_to_timm(state: dict[str, Any], module: VisionTransformer, pooling: str) -> dict[str, torch.Tensor]:
    """RETFound MAE pre-training checkpoint (`{"model": encoder + decoder}`, or a bare state dict) to timm.

    Dropped on purpose: the MAE decoder (`decoder_*`, `mask_token`) and, for mean pooling, the pretrained
    `norm.*` (upstream deletes that layer). `fc_norm` is set to its initial (1, 0), as upstream leaves it.
    Everything else must match the model exactly.
    """
    state = dict(state.get("model", state))
    state = {k: v for k, v in state.items() if not (k.startswith("decoder_") or k == "mask_token")}
    if pooling == "mean":
        state.pop("norm.weight", None)
        state.pop("norm.bias", None)
        width = int(module.embed_dim)
        state.setdefault("fc_norm.weight", torch.ones(width))
        state.setdefault("fc_norm.bias", torch.zeros(width))
    return fit_pos_embed(state, module, POS_METHOD)


def dinov2_teacher_to_timm(state: dict[str, Any], module: VisionTransformer) -> dict[str, torch.Tensor]:
    """RETFound-DINOv2 training checkpoint (`{"teacher": {"backbone.*", "dino_head.*", "ibot_head.*"}}`) or a
    plain backbone state dict to timm: strip `backbone.`, drop the DINO/iBOT heads and `mask_token`, rename
    SwiGLU `w12`/`w3` (as upstream's loader), and resample `pos_embed` (stored for 518 or 224 px) to the model.
    """
    state = state.get("teacher", state.get("model", state))
    if any(k.startswith("backbone.") for k in state):
        state = {k.removeprefix("backbone."): v for k, v in state.items()
                 if not k.startswith(("dino_head.", "ibot_head."))}
    state = {k.replace(".mlp.w12.", ".mlp.fc1.").replace(".mlp.w3.", ".mlp.fc2."): v
             for k, v in state.items() if k != "mask_token"}
    return fit_pos_embed(state, module, POS_METHOD)
