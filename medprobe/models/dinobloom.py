"""DinoBloom (blood and bone-marrow cells) and RedDino (red blood cells): DINOv2 ViT/14 continued on cell images.

Both are facebookresearch/dinov2 hub backbones (`dinov2_vit{s,b,l,g}14`: no registers, layer scale, SwiGLU FFN in
the giant) trained at 224 px with a 257-row `pos_embed` (CLS + 16 × 16 patches). Upstream's loader (marrlab/DinoBloom
`dinov2/eval/models/return_model.py::get_dino_finetuned_downloaded`, copied unchanged into Snarci/RedDino) builds the
hub model, takes the checkpoint's `teacher` dict, strips `backbone.`, drops `dino_head.*` / `ibot_head.*`, swaps in a
257-row `pos_embed` and loads strictly; its feature is `model(x)`, the final-norm CLS token, and it feeds 224 px
images normalised with the ImageNet mean/std.

medprobe builds timm's `vit_*_patch14_dinov2` for `input_size` (default 224, where the stored table is used exactly
as stored) and loads, through the DINOv2 adapter (`dinov2_to_timm`), any of these layouts:

- DINOv2's training checkpoint `{"teacher": {"backbone.*", "dino_head.*", "ibot_head.*"}}` (DinoBloom's Zenodo
  files): `backbone.` is stripped and the two projection heads are dropped here, the rest is checked strictly;
- a plain DINOv2 hub state dict (`mask_token`, the giant's `mlp.w12` / `mlp.w3`);
- timm's own layout (RedDino's Hugging Face `model.safetensors`, written with `timm.models.push_to_hf_hub` from the
  same network, and third-party timm conversions of DinoBloom).

At another input size the table is resampled once, the way upstream's hub model does it at every forward pass
(`dinov2`: bicubic with scale factor (g + 0.1)/16, no antialias); see `vit_position.py`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from timm.models.vision_transformer import VisionTransformer

from medprobe.models.dinov2 import POOLING, dinov2_to_timm
from medprobe.models.registry import register_model
from medprobe.models.vit_encoder import ViTEncoder, check_vit_options, create_vit
from medprobe.models.weights import load_published

DINOBLOOM = {
    "dinobloom_s": "vit_small_patch14_dinov2",
    "dinobloom_b": "vit_base_patch14_dinov2",
    "dinobloom_l": "vit_large_patch14_dinov2",
    "dinobloom_g": "vit_giant_patch14_dinov2",
}
REDDINO = {
    "reddino_s": "vit_small_patch14_dinov2",
    "reddino_b": "vit_base_patch14_dinov2",
    "reddino_l": "vit_large_patch14_dinov2",
}
TIMM_NAMES = {**DINOBLOOM, **REDDINO}
#: Upstream's resize: DinoBloom's `get_transforms` uses torchvision's Resize((224, 224)) (bilinear); RedDino's hub
#: config (timm pretrained_cfg) says bicubic.
INTERPOLATION = {**dict.fromkeys(DINOBLOOM, "bilinear"), **dict.fromkeys(REDDINO, "bicubic")}
PATCH = 14
NATIVE_SIZE = 224
POS_METHOD = "dinov2"  # the hub backbones: interpolate_offset 0.1, no antialias
TRAINING_HEADS = ("dino_head.", "ibot_head.")


@register_model(*TIMM_NAMES)
def build_cell_dinov2(name: str, weights: Path | None, pooling: str = "cls", input_size: int = NATIVE_SIZE,
                      seed: int = 0, **unknown: Any) -> ViTEncoder:
    """Default embedding: the final-norm CLS token, upstream's `model(x)`; `cls+mean` appends the mean patch token
    (DINOv2's linear-evaluation feature, not what DinoBloom or RedDino report)."""
    input_size = check_vit_options(name, pooling, POOLING, input_size, PATCH, unknown)
    timm_name = TIMM_NAMES[name]
    module = create_vit(timm_name, for_loading=weights is not None, seed=seed, num_classes=0, img_size=input_size)
    sha = load_published(module, weights, name, lambda state: cell_dinov2_to_timm(state, module))
    encoder = ViTEncoder(name, module, timm_name, pooling=pooling, embedding=POOLING[pooling], pos_method=POS_METHOD,
                         input_size=input_size, weights_sha256=sha, seed=seed)
    encoder.preprocessing = replace(encoder.preprocessing, interpolation=INTERPOLATION[name])
    return encoder


def cell_dinov2_to_timm(state: dict[str, Any], module: VisionTransformer) -> dict[str, torch.Tensor]:
    """Any of the three layouts (module docstring) to `module`'s keys at its patch grid. The input is not modified."""
    return dinov2_to_timm(teacher_backbone(state), module, POS_METHOD)


def teacher_backbone(state: dict[str, Any]) -> dict[str, Any]:
    """The backbone of a DINOv2 training checkpoint (`teacher` → `backbone.*`, heads dropped), or `state` itself when
    it is not one. Heads are dropped only next to a `backbone.` prefix: in a flat dict they are reported."""
    teacher = state.get("teacher", state)
    if not isinstance(teacher, dict):
        return state
    if not any(k.startswith("backbone.") for k in teacher):
        return teacher
    return {k.removeprefix("backbone."): v for k, v in teacher.items() if not k.startswith(TRAINING_HEADS)}
