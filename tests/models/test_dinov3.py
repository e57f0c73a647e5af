"""DINOv3: medprobe against timm's own forward (timm layout) and against Hugging Face transformers'
`DINOv3ViTModel` (Meta's layout), a second implementation that shares no code with timm.

Meta checkpoints are random tensors with the keys and shapes of facebookresearch/dinov3's
`dinov3_*_pretrain_lvd1689m-*.pth` (`DinoVisionTransformer` with `n_storage_tokens=4`, `mask_k_bias=True`,
`layernormbf16`, `rope_embed.periods` in bfloat16 precision); `meta_to_transformers` below is this test's own
mapping of those keys to transformers' names, written from the two models' code.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from pathlib import Path

import pytest
import timm
import torch
from safetensors.torch import save_file
from timm.models.eva import checkpoint_filter_fn
from transformers import DINOv3ViTConfig, DINOv3ViTModel

import medprobe.models.dinov3  # noqa: F401 - importing registers the DINOv3 builders
from medprobe.errors import MedprobeError, WeightsError
from medprobe.models import available_models, load_encoder, model_card
from medprobe.models.dinov3 import TIMM_NAMES, create_eva, dinov3_to_timm, set_rope_periods

PATCH = 16
PREFIX = 5  # CLS + 4 storage tokens
#: (width, depth, heads, SwiGLU) of the hub backbones, dinov3/hub/backbones.py.
SIZES = {"dinov3_vits16": (384, 12, 6, False), "dinov3_vits16plus": (384, 12, 6, True),
         "dinov3_vitb16": (768, 12, 12, False), "dinov3_vitl16": (1024, 24, 16, False),
         "dinov3_vith16plus": (1280, 32, 20, True)}
TOL = 1e-4


def hidden_width(dim: int, swiglu: bool) -> int:
    """Upstream's FFN width: int(dim * ffn_ratio), and for SwiGLUFFN two thirds of it aligned up to 8."""
    if not swiglu:
        return 4 * dim
    d = int(int(dim * 6.0) * 2 / 3)
    return d + (-d % 8)


def bf16_periods(head_dim: int) -> torch.Tensor:
    return torch.tensor([100.0 ** (4 * i / head_dim) for i in range(head_dim // 4)]).bfloat16().float()


def meta_state(dim: int, depth: int, heads: int, swiglu: bool, *, qv_bias: bool = False, seed: int = 0,
               device: str = "cpu") -> dict[str, torch.Tensor]:
    """Random tensors under Meta's keys. `qv_bias`: the bias mask is upstream's init pattern (q and v kept, k masked);
    otherwise it is all zero, as in the published checkpoints. The k bias is never zero, so a mask ignored shows."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int, std: float = 0.02, mean: float = 0.0, real: bool = False) -> torch.Tensor:
        if device == "meta" and not real:
            return torch.empty(*shape, device="meta")
        return torch.randn(*shape, generator=gen) * std + mean

    hidden, lin = hidden_width(dim, swiglu), dim**-0.5
    state = {"cls_token": rand(1, 1, dim, std=1.0), "storage_tokens": rand(1, 4, dim, std=1.0),
             "mask_token": rand(1, dim), "patch_embed.proj.weight": rand(dim, 3, PATCH, PATCH, std=0.04),
             "patch_embed.proj.bias": rand(dim), "rope_embed.periods": bf16_periods(dim // heads).bfloat16()}
    mask = torch.ones(3 * dim) if qv_bias else torch.zeros(3 * dim)
    mask[dim : 2 * dim] = 0
    for i in range(depth):
        p = f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            state[p + norm + ".weight"], state[p + norm + ".bias"] = rand(dim, std=0.1, mean=1.0), rand(dim, std=0.1)
        state[p + "attn.qkv.weight"] = rand(3 * dim, dim, std=lin)
        state[p + "attn.qkv.bias"], state[p + "attn.qkv.bias_mask"] = rand(3 * dim, std=0.5, real=True), mask.clone()
        state[p + "attn.proj.weight"], state[p + "attn.proj.bias"] = rand(dim, dim, std=lin), rand(dim)
        state[p + "ls1.gamma"], state[p + "ls2.gamma"] = rand(dim, std=0.1, mean=0.3), rand(dim, std=0.1, mean=0.3)
        if swiglu:
            for w in ("w1", "w2"):
                state[f"{p}mlp.{w}.weight"], state[f"{p}mlp.{w}.bias"] = rand(hidden, dim, std=lin), rand(hidden)
            state[p + "mlp.w3.weight"], state[p + "mlp.w3.bias"] = rand(dim, hidden, std=hidden**-0.5), rand(dim)
        else:
            state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"] = rand(hidden, dim, std=lin), rand(hidden)
            state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"] = rand(dim, hidden, std=hidden**-0.5), rand(dim)
    state["norm.weight"], state["norm.bias"] = rand(dim, std=0.1, mean=1.0), rand(dim, std=0.1)
    return state


def meta_to_transformers(state: dict[str, torch.Tensor], dim: int) -> dict[str, torch.Tensor]:
    """Meta's keys to `DINOv3ViTModel`'s. The attention bias is what upstream's `LinearKMaskedBias` applies."""
    out = {"embeddings.cls_token": state["cls_token"], "embeddings.register_tokens": state["storage_tokens"],
           "embeddings.mask_token": state["mask_token"][None], "norm.weight": state["norm.weight"],
           "norm.bias": state["norm.bias"], "embeddings.patch_embeddings.weight": state["patch_embed.proj.weight"],
           "embeddings.patch_embeddings.bias": state["patch_embed.proj.bias"]}
    names = {"norm1": "norm1", "norm2": "norm2", "attn.proj": "attention.o_proj", "mlp.fc1": "mlp.up_proj",
             "mlp.fc2": "mlp.down_proj", "mlp.w1": "mlp.gate_proj", "mlp.w2": "mlp.up_proj", "mlp.w3": "mlp.down_proj"}
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    for i in range(depth):
        src, dst = f"blocks.{i}.", f"model.layer.{i}."
        for old, new in names.items():
            for kind in ("weight", "bias"):
                if f"{src}{old}.{kind}" in state:
                    out[f"{dst}{new}.{kind}"] = state[f"{src}{old}.{kind}"]
        q, k, v = state[src + "attn.qkv.weight"].chunk(3)
        out[dst + "attention.q_proj.weight"], out[dst + "attention.k_proj.weight"] = q, k
        out[dst + "attention.v_proj.weight"] = v
        bq, bk, bv = (state[src + "attn.qkv.bias"] * state[src + "attn.qkv.bias_mask"]).chunk(3)
        assert not bk.any()
        out[dst + "attention.q_proj.bias"], out[dst + "attention.v_proj.bias"] = bq, bv
        out[dst + "layer_scale1.lambda1"], out[dst + "layer_scale2.lambda1"] = state[src + "ls1.gamma"], state[
            src + "ls2.gamma"]
    return out


def transformers_model(state: dict[str, torch.Tensor], dim: int, heads: int, swiglu: bool,
                       periods: torch.Tensor) -> DINOv3ViTModel:
    """transformers' model holding `state`, with upstream's RoPE `periods` (transformers computes float32 ones)."""
    depth = len({k.split(".")[1] for k in state if k.startswith("blocks.")})
    config = DINOv3ViTConfig(hidden_size=dim, intermediate_size=hidden_width(dim, swiglu), num_hidden_layers=depth,
                             num_attention_heads=heads, num_register_tokens=4, use_gated_mlp=swiglu,
                             hidden_act="silu" if swiglu else "gelu", layer_norm_eps=1e-5, image_size=224,
                             attn_implementation="eager")
    with torch.device("meta"):  # every tensor comes from `state`: skip transformers' random init
        model = DINOv3ViTModel(config).eval()
    model.load_state_dict(meta_to_transformers(state, dim), strict=True, assign=True)
    model.rope_embeddings.register_buffer("inv_freq", 1.0 / periods, persistent=False)
    return model


def randomised(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """timm's init leaves layer scale at 1e-5 (blocks barely matter): draw every tensor so that each block counts."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in module.state_dict().items():
            if re.search(r"gamma_\d$", key):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1 + 0.3)
            elif re.search(r"norm\d?\.weight$", key):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.1 + 1.0)
            elif key.endswith("bias") or key.endswith(("q_bias", "v_bias")):
                t.copy_(torch.randn(t.shape, generator=gen) * 0.05)
            elif t.ndim >= 2 and not key.endswith("token"):
                t.copy_(torch.randn(t.shape, generator=gen) * t[0].numel() ** -0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=gen))
    return module.eval()


def image(batch: int = 2, size: int = 224, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape
    return (a - b).abs().max().item()


@pytest.fixture(scope="module")
def timm_small(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """timm's ViT-S/16 with random weights, saved as timm's hub safetensors are."""
    module = randomised(timm.create_model("vit_small_patch16_dinov3", pretrained=False, num_classes=0,
                                          global_pool="token"), seed=3)
    path = tmp_path_factory.mktemp("dinov3") / "model.safetensors"
    save_file({k: v.contiguous() for k, v in module.state_dict().items()}, str(path))
    return module, path


def test_timm_layout_matches_timm_forward(timm_small: tuple) -> None:
    source, path = timm_small
    cls_only = load_encoder("dinov3_vits16", weights=path)
    encoder = load_encoder("dinov3_vits16", weights=path, pooling="cls+mean")
    x = image()
    with torch.inference_mode():
        got, tokens = encoder.encode_with_tokens(x)
        set_rope_periods(source, bf16_periods(64))  # timm's model card: "truncate the periods to bfloat16"
        features = source.forward_features(x)
        assert max_diff(cls_only.encode(x), source.forward_head(features)) < TOL  # = source(x): CLS pooling
        assert max_diff(got, torch.cat([features[:, 0], features[:, PREFIX:].mean(1)], 1)) < TOL
        assert max_diff(tokens, features[:, PREFIX:]) < TOL
        source.rope.init_non_persistent_buffers()  # timm's float32 periods: not upstream's numbers
        assert max_diff(got[:, :384], source(x)) > 3 * TOL
    assert tokens.shape == (2, (224 // PATCH) ** 2, 384) and encoder.embed_dim == 768 and cls_only.embed_dim == 384
    assert encoder.pretrained and encoder.architecture.startswith("timm:vit_small_patch16_dinov3/rope_periods:bf16/")


@pytest.fixture(scope="module")
def small_meta() -> dict[str, torch.Tensor]:
    """A ViT-S/16 checkpoint in Meta's layout whose q/v bias survives its mask (upstream's init pattern)."""
    return meta_state(*SIZES["dinov3_vits16"], qv_bias=True, seed=4)


@pytest.mark.parametrize(("name", "qv_bias"), [("dinov3_vits16", True), ("dinov3_vits16", False),
                                               ("dinov3_vits16plus", False)])
def test_meta_layout_matches_transformers(small_meta: dict, tmp_path: Path, name: str, qv_bias: bool) -> None:
    """At 112 px (a 7 x 7 grid, not the 14 x 14 timm's test uses) to keep the full-depth forwards fast."""
    dim, depth, heads, swiglu = SIZES[name]
    if name == "dinov3_vits16":  # the published files' mask is all zero: upstream applies no attention bias
        state = small_meta if qv_bias else {k: v * 0 if k.endswith("bias_mask") else v for k, v in small_meta.items()}
    else:
        state = meta_state(dim, depth, heads, swiglu, qv_bias=qv_bias, seed=4)
    path = tmp_path / "dinov3_pretrain.pth"
    torch.save(state, path)
    encoder = load_encoder(name, weights=path, pooling="cls+mean", input_size=112)
    assert encoder.timm_name.endswith("_qkvb") == qv_bias
    x = image(size=112)
    reference = transformers_model(state, dim, heads, swiglu, state["rope_embed.periods"].float())
    with torch.inference_mode():
        got, tokens = encoder.encode_with_tokens(x)
        out = reference(pixel_values=x)
        patches = out.last_hidden_state[:, PREFIX:]
        assert max_diff(got, torch.cat([out.pooler_output, patches.mean(1)], 1)) < TOL
        assert max_diff(tokens, patches) < TOL
        if qv_bias:  # the check is sensitive to the periods: transformers' own float32 ones fail it
            reference.rope_embeddings.inv_freq.copy_(1.0 / (100.0 ** (torch.arange(16) / 16)))
            assert max_diff(got[:, :dim], reference(pixel_values=x).pooler_output) > 3 * TOL


def test_meta_layout_agrees_with_timms_filter() -> None:
    """A published-like checkpoint (bias mask all zero) maps to the same tensors as timm's `checkpoint_filter_fn`."""
    state = meta_state(384, 2, 6, swiglu=True)
    with torch.device("meta"):
        module = timm.create_model("vit_small_plus_patch16_dinov3", pretrained=False, num_classes=0, depth=2)
    with contextlib.redirect_stdout(io.StringIO()):  # timm prints each qkv bias it skips
        theirs = checkpoint_filter_fn(state, module)
    ours = dinov3_to_timm(state)
    assert not ours.qkv_bias and torch.equal(ours.periods, state["rope_embed.periods"].float())
    assert ours.state.keys() == theirs.keys() == module.state_dict().keys()
    assert all(torch.equal(ours.state[k], theirs[k]) for k in theirs)
    assert "mask_token" in state and "rope_embed.periods" in state  # the caller's dict is left as it was


def test_timm_qkvb_layout_keeps_only_biases_that_act() -> None:
    """timm's `_qkvb` hub copies carry zero q/v biases: dropped (the plain model computes the same); a bias that is
    not zero selects the `_qkvb` architecture instead of being lost."""
    zero = {"cls_token": torch.ones(1, 1, 4), "blocks.0.attn.q_bias": torch.zeros(4),
            "blocks.0.attn.v_bias": torch.zeros(4)}
    plain = dinov3_to_timm(zero)
    assert not plain.qkv_bias and plain.periods is None and set(plain.state) == {"cls_token"}
    acting = dinov3_to_timm({**zero, "blocks.0.attn.v_bias": torch.full((4,), 0.1)})
    assert acting.qkv_bias and set(acting.state) == set(zero)


def test_huge_plus_swiglu_blocks_match_transformers() -> None:
    """Two ViT-H+ blocks (width 1280, SwiGLU hidden 5120) through the adapter into timm's H+ layout."""
    dim, _, heads, swiglu = SIZES["dinov3_vith16plus"]
    state = meta_state(dim, 2, heads, swiglu, qv_bias=True, seed=5)
    converted = dinov3_to_timm(state)
    assert converted.qkv_bias and converted.periods is not None
    module = create_eva("vit_huge_plus_patch16_dinov3_qkvb", for_loading=True, seed=0, depth=2).eval()
    module.load_state_dict(converted.state, strict=True)
    set_rope_periods(module, converted.periods)
    x = image(batch=1, seed=6)
    with torch.inference_mode():
        diff = max_diff(module(x), transformers_model(state, dim, heads, swiglu, converted.periods)(x).pooler_output)
    assert diff < TOL


@pytest.mark.parametrize("name", sorted(TIMM_NAMES))
def test_full_meta_key_sets_map_exactly(name: str) -> None:
    """Every key of the full-depth Meta checkpoint maps to exactly timm's key set and shapes (meta tensors)."""
    dim, depth, heads, swiglu = SIZES[name]
    state = meta_state(dim, depth, heads, swiglu, device="meta")
    assert len(state) == 8 + depth * (17 if swiglu else 15)
    with torch.device("meta"):
        module = timm.create_model(TIMM_NAMES[name], pretrained=False, num_classes=0)
    converted = dinov3_to_timm(state).state
    expected = module.state_dict()
    assert set(converted) == set(expected)
    assert all(converted[k].shape == expected[k].shape for k in expected)
    assert module.embed_dim == model_card(name).embed_dim


def test_wrong_architectures_are_refused(tmp_path: Path) -> None:
    dinov2 = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, depth=1).state_dict()
    dinov2["mask_token"] = torch.zeros(1, 384)  # facebookresearch/dinov2's own layout
    torch.save(dinov2, tmp_path / "dinov2.pth")
    with pytest.raises(WeightsError, match=r"does not fit 'dinov3_vits16' \(missing keys: reg_token, .*gamma_1.*"
                                           r"unexpected keys: pos_embed, .*mask_token.*shape mismatches: "
                                           r"patch_embed\.proj\.weight"):
        load_encoder("dinov3_vits16", weights=tmp_path / "dinov2.pth")
    torch.save(meta_state(768, 2, 12, swiglu=False), tmp_path / "vitb.pth")
    with pytest.raises(WeightsError, match=r"missing keys: blocks\.2\..*shape mismatches: cls_token \(1, 1, 768\)≠"
                                           r"\(1, 1, 384\)"):
        load_encoder("dinov3_vits16", weights=tmp_path / "vitb.pth")
    torch.save(meta_state(384, 1, 6, swiglu=True), tmp_path / "splus.pth")
    with pytest.raises(WeightsError, match=r"missing keys: blocks\.0\.mlp\.fc1\.weight.*"
                                           r"unexpected keys: blocks\.0\.mlp\.fc1_g\.weight"):
        load_encoder("dinov3_vits16", weights=tmp_path / "splus.pth")


def test_unfaithful_meta_checkpoints_are_refused(small_meta: dict, tmp_path: Path) -> None:
    base = small_meta
    with pytest.raises(WeightsError, match=r"local_cls_norm.*SAT-493M"):
        dinov3_to_timm({**base, "local_cls_norm.weight": torch.ones(384), "local_cls_norm.bias": torch.zeros(384)})
    with pytest.raises(WeightsError, match=r"blocks\.3\.attn\.qkv\.bias has a non-zero key bias"):
        dinov3_to_timm({**base, "blocks.3.attn.qkv.bias_mask": torch.ones(3 * 384)})
    torch.save({**base, "rope_embed.periods": bf16_periods(64) * 2}, tmp_path / "base200.pth")
    with pytest.raises(WeightsError, match=r"rope_embed\.periods .*not the base-100 RoPE periods"):
        load_encoder("dinov3_vits16", weights=tmp_path / "base200.pth")


@pytest.mark.slow
def test_random_init_is_deterministic_labelled_and_sized() -> None:
    a = load_encoder("dinov3_vits16", input_size=64)
    b = load_encoder("dinov3_vits16", input_size=64)
    x = image(size=64)
    with torch.inference_mode():
        torch.testing.assert_close(a.encode(x), b.encode(x))
        _, tokens = a.encode_with_tokens(x)
        with pytest.raises(MedprobeError, match=r"built for .*64, 64.*input_size"):
            a.encode(image(size=80))
    assert tokens.shape == (2, 16, 384) and a.token_dim == 384
    assert torch.equal(a.to(torch.device("cpu")).module.rope.periods, bf16_periods(64))  # timm's _apply keeps them
    assert a.weights_label == "random-init" and not a.pretrained
    assert a.fingerprint == b.fingerprint != load_encoder("dinov3_vits16", input_size=64, seed=1).fingerprint
    with pytest.raises(MedprobeError, match="multiple of the patch size 16"):
        load_encoder("dinov3_vits16", input_size=100)
    with pytest.raises(MedprobeError, match="unknown option"):
        load_encoder("dinov3_vits16", poolin="cls")


def test_every_registered_model_has_a_card() -> None:
    for name in available_models():
        assert model_card(name).name == name
    for name in TIMM_NAMES:
        card = model_card(name)
        assert re.fullmatch(rf"{name}_pretrain_lvd1689m-[0-9a-f]{{8}}\.pth", card.checkpoint_file or "")
        assert card.fetch == {"hub": f"timm/{TIMM_NAMES[name]}.lvd1689m", "files": ["model.safetensors", "config.json"]}
        assert card.embed_dim == SIZES[name][0] and "DINOv3 License" in card.licence and "Siméoni" in card.citation
        assert card.preprocessing["input_size"] == 224 and card.sha256 is None
        assert (Path(__file__).parents[2] / "model_zoo" / name / "README.md").is_file()
    assert math.isclose(bf16_periods(64)[1].item(), 1.3359375)  # the upstream checkpoints' value, not 100**(1/16)
