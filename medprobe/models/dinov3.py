"""DINOv3 ViT-S/S+/B/L/H+ /16 (LVD-1689M) on timm's Eva, loading Meta's checkpoint layout or timm's.

Numbers follow facebookresearch/dinov3 (`dinov3/models/vision_transformer.py`, `dinov3/hub/backbones.py`) where
timm's port departs from it:

- RoPE periods. Upstream keeps `rope_embed.periods` as a persistent buffer and loads it from the checkpoint; the
  published checkpoints hold it rounded to bfloat16. timm regenerates it in float32, which moves the CLS token of
  random-weight ViT-S checkpoints by 6e-4 to 1.4e-3 (tests/models/test_dinov3.py). medprobe uses the checkpoint's
  periods (Meta layout) or the same bfloat16-rounded values (timm layout, random init), as timm's own model card
  says to do to match the original.
- Attention bias. Upstream multiplies the qkv bias by `qkv.bias_mask` (`LinearKMaskedBias`), so the bias it applies
  is `bias * bias_mask`. In the releases it is zero (timm's model card), and timm's plain variants have no qkv bias.
  A checkpoint whose masked q/v bias is not zero is built on timm's `_qkvb` variant; one whose k bias survives the
  mask cannot be expressed in timm and is refused. (timm's own filter drops the bias when the model has none and
  ignores the mask when it has one.)
- Strictness. `mask_token` (training only) is the one key dropped; `local_cls_norm` (the SAT-493M ViT-L, whose
  mean/std differ, and the 7B) and anything else left over is refused with the keys named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from timm.models.eva import Eva

from medprobe.errors import MedprobeError, WeightsError
from medprobe.models.cards import load_card
from medprobe.models.registry import register_model
from medprobe.models.vit_encoder import ViTEncoder, check_vit_options
from medprobe.models.weights import load_strict, read_checkpoint

TIMM_NAMES = {
    "dinov3_vits16": "vit_small_patch16_dinov3",
    "dinov3_vits16plus": "vit_small_plus_patch16_dinov3",
    "dinov3_vitb16": "vit_base_patch16_dinov3",
    "dinov3_vitl16": "vit_large_patch16_dinov3",
    "dinov3_vith16plus": "vit_huge_plus_patch16_dinov3",
}
POOLING = {"cls": "final-norm CLS", "cls+mean": "final-norm CLS ++ mean final-norm patch token"}
PATCH = 16
#: `pos_embed_rope_base` of every hub backbone (dinov3/hub/backbones.py).
ROPE_BASE = 100.0
QKV_BIAS_SUFFIX = "_qkvb"


@dataclass(frozen=True)
class TimmState:
    """A checkpoint in timm's Eva layout, with what the layout itself cannot carry."""

    state: dict[str, torch.Tensor]
    #: Upstream's `rope_embed.periods` from a Meta checkpoint (float32), or None: use `upstream_periods`.
    periods: torch.Tensor | None
    #: True when the (masked) q/v bias is not zero anywhere: the module must be timm's `_qkvb` variant.
    qkv_bias: bool


@register_model(*TIMM_NAMES)
def build_dinov3(name: str, weights: Path | None, pooling: str = "cls", input_size: int = 224,
                 seed: int = 0, **unknown: Any) -> DINOv3Encoder:
    """Default embedding: the final-norm CLS token (upstream's `forward` returns `x_norm_clstoken`); `cls+mean`
    appends the mean final-norm patch token (storage tokens left out), as DINOv3's linear evaluation does."""
    input_size = check_vit_options(name, pooling, POOLING, input_size, PATCH, unknown)
    converted, sha = None, None
    if weights is not None:
        raw, sha = read_checkpoint(weights, load_card(name))
        converted = dinov3_to_timm(raw, str(weights))
    timm_name = TIMM_NAMES[name] + (QKV_BIAS_SUFFIX if converted is not None and converted.qkv_bias else "")
    module = create_eva(timm_name, for_loading=converted is not None, seed=seed, img_size=input_size)
    periods = upstream_periods(module)
    if converted is not None and weights is not None:
        load_strict(module, converted.state, weights, name)
        if converted.periods is not None:
            periods = checked_periods(converted.periods, periods, weights, name)
    set_rope_periods(module, periods)
    return DINOv3Encoder(name, module, timm_name, pooling=pooling, input_size=input_size, weights_sha256=sha,
                         seed=seed, periods_label=_periods_label(periods, module))


class DINOv3Encoder(ViTEncoder):
    """A frozen DINOv3 ViT built for one input size (RoPE could take others; the fingerprint records this one).

    Tokens after the last block and the final norm are [CLS, 4 storage tokens, patches]; `encode_with_tokens`
    returns the patches only, (B, (input_size/16)^2, width). timm's token pooling of the Eva is the CLS token, so
    `cls` pooling is `module(x)`, as for the DINOv2 entries.
    """

    def __init__(self, name: str, module: Eva, timm_name: str, *, pooling: str, input_size: int,
                 weights_sha256: str | None, seed: int, periods_label: str) -> None:
        self.periods_label = periods_label
        super().__init__(name, module, timm_name, pooling=pooling, embedding=POOLING[pooling], pos_method="rope",
                         input_size=input_size, weights_sha256=weights_sha256, seed=seed)

    @property
    def position(self) -> str:
        return f"rope_periods:{self.periods_label}"


def create_eva(timm_name: str, *, for_loading: bool, seed: int, **kwargs: Any) -> Eva:
    """timm's DINOv3 Eva with CLS pooling and no head: randomly initialised from `seed`, or (`for_loading`) as
    uninitialised memory that a strict load then fills, with only the computed buffers (RoPE periods, the zero k
    bias) set — initialising a ViT-H+ on CPU only to overwrite it takes long."""
    if not timm.is_model(timm_name):
        raise MedprobeError(f"timm {timm.__version__} has no '{timm_name}'; DINOv3 needs a newer timm release")
    kwargs = {"pretrained": False, "num_classes": 0, "global_pool": "token", **kwargs}
    if for_loading:
        with torch.device("meta"):
            module = timm.create_model(timm_name, **kwargs)
        persistent = set(module.state_dict())
        modules = dict(module.named_modules())
        owners = {n.rpartition(".")[0] for n, _ in module.named_buffers() if n not in persistent}
        if all(hasattr(modules[o], "init_non_persistent_buffers") for o in owners):
            module.to_empty(device="cpu")
            for owner in sorted(owners):
                modules[owner].init_non_persistent_buffers()
            return as_eva(module, timm_name)
    with torch.random.fork_rng(devices=[]):  # seeded from `seed`, leaving the caller's random state alone
        torch.manual_seed(seed)
        return as_eva(timm.create_model(timm_name, **kwargs), timm_name)


def as_eva(module: torch.nn.Module, timm_name: str) -> Eva:
    if not isinstance(module, Eva) or module.rope is None:
        raise MedprobeError(f"timm model '{timm_name}' is a {type(module).__name__} without RoPE, not DINOv3's Eva")
    return module


def dinov3_to_timm(state: Mapping[str, Any], where: str = "checkpoint") -> TimmState:
    """The one adapter for DINOv3 weights: Meta's layout (`dinov3_*_pretrain_lvd1689m-*.pth`: `storage_tokens`,
    `rope_embed.periods`, `ls1.gamma`, SwiGLU `mlp.w1/w2/w3`, `attn.qkv.bias` with `bias_mask`) or timm's own
    (safetensors from the Hugging Face hub, plain or `_qkvb`), to timm's Eva keys.

    Meta → timm: `storage_tokens` → `reg_token`, `lsN.gamma` → `gamma_N`, `mlp.w1/w2/w3` → `mlp.fc1_g/fc1_x/fc2`
    (upstream: w3(silu(w1 x) · w2 x); timm: fc2(silu(fc1_g x) · fc1_x x)); `mask_token` is dropped (training
    only). Keys left over or missing are for `load_strict` to report. The input is never modified.
    """
    state = dict(state.get("model", state.get("state_dict", state)))
    periods = state.pop("rope_embed.periods", None)
    if "storage_tokens" in state or periods is not None:
        state.pop("mask_token", None)
        if any(k.startswith("local_cls_norm.") for k in state):
            raise WeightsError(
                f"{where}: has `local_cls_norm`, so it is the SAT-493M ViT-L (or the 7B) checkpoint; medprobe's DINOv3 "
                "entries are the LVD-1689M backbones (ImageNet mean/std), and the satellite weights need their own"
            )
        state = {_meta_to_timm_key(k): v for k, v in state.items()}
    state, qkv_bias = _fold_qkv_bias(state, where)
    return TimmState(state, None if periods is None else periods.detach().float(), qkv_bias)


def _meta_to_timm_key(key: str) -> str:
    if key == "storage_tokens":
        return "reg_token"
    if not key.startswith("blocks."):
        return key
    for old, new in ((".ls1.gamma", ".gamma_1"), (".ls2.gamma", ".gamma_2"), (".mlp.w1.", ".mlp.fc1_g."),
                     (".mlp.w2.", ".mlp.fc1_x."), (".mlp.w3.", ".mlp.fc2.")):
        key = key.replace(old, new)
    return key


def _fold_qkv_bias(state: dict[str, Any], where: str) -> tuple[dict[str, Any], bool]:
    """Upstream's applied bias `qkv.bias * qkv.bias_mask` as timm's `q_bias`/`v_bias`, kept only when not all zero."""
    for key in [k for k in state if k.endswith(".attn.qkv.bias")]:
        bias = state.pop(key)
        mask = state.pop(key + "_mask", None)
        applied = bias * mask.to(bias.dtype) if mask is not None else bias
        q, k, v = applied.chunk(3)
        if bool(k.any()):
            raise WeightsError(f"{where}: {key} has a non-zero key bias after its mask; timm's DINOv3 has none, so "
                               "this checkpoint cannot be loaded exactly")
        prefix = key[: -len("qkv.bias")]
        state[prefix + "q_bias"], state[prefix + "v_bias"] = q, v
    qv = [k for k in state if k.endswith((".attn.q_bias", ".attn.v_bias"))]
    if any(bool(state[k].any()) for k in qv):
        return state, True
    return {k: v for k, v in state.items() if k not in qv}, False


def upstream_periods(module: Eva) -> torch.Tensor:
    """The RoPE periods of the published checkpoints: base 100 ** (2i / (head_dim / 2)), i < head_dim / 4, rounded
    to bfloat16 (timm computes the same formula in float32)."""
    count = _periods_buffer(module).numel()
    exponents = 2.0 * torch.arange(count, dtype=torch.float32) / (2 * count)
    return (ROPE_BASE**exponents).to(torch.bfloat16).to(torch.float32)


def checked_periods(periods: torch.Tensor, expected: torch.Tensor, path: Path, model_name: str) -> torch.Tensor:
    """A checkpoint's own periods, used as upstream uses them, once they are DINOv3's base-100 RoPE to bf16 accuracy."""
    if periods.shape != expected.shape or not torch.allclose(periods, expected, rtol=1e-2, atol=0.0):
        raise WeightsError(
            f"{path}: rope_embed.periods {tuple(periods.shape)} are not the base-{ROPE_BASE:g} RoPE periods of "
            f"'{model_name}' {tuple(expected.shape)}; is it the right architecture?"
        )
    return periods


def set_rope_periods(module: Eva, periods: torch.Tensor) -> None:
    with torch.no_grad():
        _periods_buffer(module).copy_(periods)


def _periods_buffer(module: Eva) -> torch.Tensor:
    periods = getattr(module.rope, "periods", None)
    if not isinstance(periods, torch.Tensor):
        raise MedprobeError(f"timm's {type(module.rope).__name__} has no `periods` buffer; not DINOv3's RoPE")
    return periods


def _periods_label(periods: torch.Tensor, module: Eva) -> str:
    return "bf16" if torch.equal(periods, upstream_periods(module)) else "checkpoint"
