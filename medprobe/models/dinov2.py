"""DINOv2 ViT-S/B/L/g/14 (with and without registers) on timm, loading the official checkpoint layout.

Numbers match facebookresearch/dinov2 at every input size, not only at the native 518 px: the position
embeddings are resampled once, at build time, with upstream's own method (`vit_position.py`) and the timm model
is built for that fixed size. timm's dynamic resampling (antialiased, size-based) differs from upstream's
non-register models by up to 5e-2 on the CLS token at 224 px.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer

from medprobe.models.registry import register_model
from medprobe.models.vit_encoder import ViTEncoder, check_vit_options, create_vit
from medprobe.models.vit_position import grid_side, resample_pos_embed
from medprobe.models.weights import load_published

TIMM_NAMES = {
    "dinov2_vits14": "vit_small_patch14_dinov2",
    "dinov2_vitb14": "vit_base_patch14_dinov2",
    "dinov2_vitl14": "vit_large_patch14_dinov2",
    "dinov2_vitg14": "vit_giant_patch14_dinov2",
    "dinov2_vits14_reg": "vit_small_patch14_reg4_dinov2",
    "dinov2_vitb14_reg": "vit_base_patch14_reg4_dinov2",
    "dinov2_vitl14_reg": "vit_large_patch14_reg4_dinov2",
    "dinov2_vitg14_reg": "vit_giant_patch14_reg4_dinov2",
}
POOLING = {"cls": "final-norm CLS", "cls+mean": "final-norm CLS ++ mean final-norm patch token"}
PATCH = 14
NATIVE_SIZE = 518


def pos_method(name: str) -> str:
    """Upstream's hub models: offset 0.1 without antialias, or (registers) size-based with antialias."""
    return "dinov2_reg" if name.endswith("_reg") else "dinov2"


@register_model(*TIMM_NAMES)
def build_dinov2(name: str, weights: Path | None, pooling: str = "cls", input_size: int = 224,
                 seed: int = 0, **unknown: Any) -> ViTEncoder:
    """Default embedding: the final-norm CLS token (what upstream's forward returns); `cls+mean` appends the
    mean patch token, as DINOv2's linear evaluation does."""
    input_size = check_vit_options(name, pooling, POOLING, input_size, PATCH, unknown)
    module = create_vit(TIMM_NAMES[name], for_loading=weights is not None, seed=seed, num_classes=0,
                        img_size=input_size)
    sha = load_published(module, weights, name, lambda state: dinov2_to_timm(state, module, pos_method(name)))
    return ViTEncoder(name, module, TIMM_NAMES[name], pooling=pooling, embedding=POOLING[pooling],
                      pos_method=pos_method(name), input_size=input_size, weights_sha256=sha, seed=seed)


def dinov2_to_timm(state: dict[str, Any], module: VisionTransformer, method: str) -> dict[str, torch.Tensor]:
    """The one adapter for DINOv2 weights: the official hub layout (`*_pretrain.pth`, flat, with `mask_token`)
    or timm's own (safetensors from the Hugging Face hub), to `module`'s keys at `module`'s patch grid.

    Official → timm: `mask_token` is dropped (training only); giant's SwiGLU `mlp.w12`/`mlp.w3` become timm's
    packed `mlp.fc1`/`mlp.fc2` (same gate order: silu(first half) · second half); with registers,
    `register_tokens` become `reg_token` and the CLS position row is folded into `cls_token` (timm's
    `no_embed_class` layout: upstream adds it to the CLS token before inserting the registers, so this is exact).
    Keys left over or missing are for `load_strict` to report. The input is never modified.
    """
    state = dict(state.get("model", state.get("state_dict", state)))
    if "mask_token" in state:
        state.pop("mask_token")
        if "register_tokens" in state and "pos_embed" in state and "cls_token" in state:
            state["reg_token"] = state.pop("register_tokens")
            state["cls_token"] = state["cls_token"] + state["pos_embed"][:, 0]
            state["pos_embed"] = state["pos_embed"][:, 1:]
        state = {_rename_swiglu(k): v for k, v in state.items()}
    return fit_pos_embed(state, module, method)


def fit_pos_embed(state: dict[str, torch.Tensor], module: VisionTransformer, method: str) -> dict[str, torch.Tensor]:
    """Resample `pos_embed` to the module's (square) patch grid; a table that cannot be one is left for
    `load_strict` to report as a shape mismatch."""
    pos = state.get("pos_embed")
    if not isinstance(pos, torch.Tensor) or pos.ndim != 3 or module.pos_embed is None:
        return state
    num_prefix = 0 if getattr(module, "no_embed_class", False) else int(module.num_prefix_tokens)
    rows, cols = module.patch_embed.grid_size
    if rows != cols or pos.shape[1] <= num_prefix:
        return state
    if grid_side(pos.shape[1] - num_prefix) is None:
        return state
    return {**state, "pos_embed": resample_pos_embed(pos, num_prefix, rows, method)}


def _rename_swiglu(key: str) -> str:
    if key.startswith("blocks.") and (".mlp.w12." in key or ".mlp.w3." in key):
        return key.replace(".mlp.w12.", ".mlp.fc1.").replace(".mlp.w3.", ".mlp.fc2.")
    return key
