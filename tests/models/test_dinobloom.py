"""DinoBloom and RedDino: random DINOv2 ViT-S/14 weights at 224 px (a 257-row pos_embed, as both release), written in
every layout medprobe reads, loaded through the zoo entries and compared with timm's own forward of the same weights
and with medprobe's `dinov2_vits14` entry (itself checked against upstream DINOv2's forward in test_dinov2_parity)."""

from __future__ import annotations

from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from medprobe.errors import MedprobeError, WeightsError
from medprobe.models import dinobloom, dinov2  # noqa: F401 - registers the builders
from medprobe.models.dinobloom import DINOBLOOM, REDDINO, TIMM_NAMES, cell_dinov2_to_timm
from medprobe.models.registry import available_models, load_encoder, model_card

DIM, DEPTH, HEADS = 384, 12, 6
SIZES = {"vit_small": (384, 12), "vit_base": (768, 12), "vit_large": (1024, 24), "vit_giant": (1536, 40)}


def hub_state(dim: int, depth: int, swiglu: bool = False, seed: int = 0, meta: bool = False) -> dict[str, torch.Tensor]:
    """Random tensors with the keys and shapes of a facebookresearch/dinov2 hub backbone at 224 px (257-row
    pos_embed, `mask_token`; SwiGLU `mlp.w12`/`mlp.w3` sized as upstream's SwiGLUFFNFused for the giant)."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape: int, std: float = 0.02, mean: float = 0.0) -> torch.Tensor:
        if meta:
            return torch.empty(*shape, device="meta")
        return torch.randn(*shape, generator=gen) * std + mean

    state = {"cls_token": rand(1, 1, dim, std=1.0), "pos_embed": rand(1, 257, dim, std=0.5), "mask_token": rand(1, dim),
             "patch_embed.proj.weight": rand(dim, 3, 14, 14, std=0.05), "patch_embed.proj.bias": rand(dim)}
    hidden = (int(4 * dim * 2 / 3) + 7) // 8 * 8 if swiglu else 4 * dim
    fc1, fc2 = ("mlp.w12", "mlp.w3") if swiglu else ("mlp.fc1", "mlp.fc2")
    for i in range(depth):
        p = f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            state[p + norm + ".weight"], state[p + norm + ".bias"] = rand(dim, std=0.1, mean=1.0), rand(dim, std=0.1)
        state[p + "attn.qkv.weight"], state[p + "attn.qkv.bias"] = rand(3 * dim, dim, std=dim**-0.5), rand(3 * dim)
        state[p + "attn.proj.weight"], state[p + "attn.proj.bias"] = rand(dim, dim, std=dim**-0.5), rand(dim)
        state[p + "ls1.gamma"], state[p + "ls2.gamma"] = rand(dim, std=0.1, mean=0.3), rand(dim, std=0.1, mean=0.3)
        width = 2 * hidden if swiglu else hidden
        state[f"{p}{fc1}.weight"], state[f"{p}{fc1}.bias"] = rand(width, dim, std=dim**-0.5), rand(width)
        state[f"{p}{fc2}.weight"], state[f"{p}{fc2}.bias"] = rand(dim, hidden, std=hidden**-0.5), rand(dim)
    state["norm.weight"], state["norm.bias"] = rand(dim, std=0.1, mean=1.0), rand(dim, std=0.1)
    return state


def training_layout(backbone: dict[str, torch.Tensor]) -> dict[str, dict[str, torch.Tensor]]:
    """DINOv2's `{"teacher": ...}` checkpoint, as DinoBloom's Zenodo files: backbone plus DINO and iBOT heads."""
    device = next(iter(backbone.values())).device
    heads = {f"{h}.{k}": torch.zeros(4, 4, device=device) for h in ("dino_head", "ibot_head")
             for k in ("mlp.0.weight", "mlp.0.bias", "last_layer.weight_g", "last_layer.weight_v")}
    return {"teacher": {**{f"backbone.{k}": v for k, v in backbone.items()}, **heads}}


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, dict[str, Path]]:
    """timm's ViT-S/14 DINOv2 at 224 px holding random weights, and those weights in each layout."""
    folder = tmp_path_factory.mktemp("cell_dinov2")
    official = hub_state(DIM, DEPTH)
    timm_layout = {k: v for k, v in official.items() if k != "mask_token"}
    reference = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, img_size=224).eval()
    reference.load_state_dict(timm_layout, strict=True)
    paths = {"training": folder / "DinoBloom-S.pth", "plain": folder / "plain.pth",
             "timm": folder / "model.safetensors"}
    torch.save(training_layout(official), paths["training"])
    torch.save(official, paths["plain"])
    save_file(timm_layout, str(paths["timm"]))
    return reference, paths


def test_training_layout_matches_timm_forward(small: tuple) -> None:
    reference, paths = small
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    encoder = load_encoder("dinobloom_s", weights=paths["training"])
    both = load_encoder("dinobloom_s", weights=paths["training"], pooling="cls+mean")
    with torch.inference_mode():
        tokens = reference.forward_features(x)
        expected_cls = reference.forward_head(tokens)  # timm's forward: global_pool 'token' after the final norm
        got, got_tokens = encoder.encode_with_tokens(x)
        got_both = both.encode(x)
    assert got.shape == (1, DIM) and encoder.embed_dim == DIM and both.embed_dim == 2 * DIM
    assert (got - expected_cls).abs().max().item() < 1e-4
    assert got_tokens.shape == (1, 256, DIM) and (got_tokens - tokens[:, 1:]).abs().max().item() < 1e-4
    assert (got_both - torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=1)).abs().max().item() < 1e-4


@pytest.mark.parametrize(("name", "layout"), [("dinobloom_s", "plain"), ("dinobloom_s", "timm"),
                                              ("reddino_s", "timm"), ("reddino_s", "training")])
def test_every_layout_loads_the_same_tensors(small: tuple, name: str, layout: str) -> None:
    """The network is timm's module in every case, so equal tensors mean equal outputs (checked above once)."""
    reference, paths = small
    loaded = load_encoder(name, weights=paths[layout]).module.state_dict()
    expected = reference.state_dict()
    assert set(loaded) == set(expected)
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)


def test_same_numbers_as_the_dinov2_entry(small: tuple) -> None:
    """The plain layout through `dinov2_vits14` at 224 px: the stored 257-row table fits, nothing is resampled."""
    _, paths = small
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        cell = load_encoder("dinobloom_s", weights=paths["training"]).encode(x)
        plain = load_encoder("dinov2_vits14", weights=paths["plain"], input_size=224).encode(x)
    assert (cell - plain).abs().max().item() < 1e-6


def test_pos_embed_is_kept_at_224_and_resampled_like_the_hub_model_elsewhere() -> None:
    state = hub_state(DIM, 1, seed=3)
    pos = state["pos_embed"]
    for size in (224, 280):
        with torch.device("meta"):
            module = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, img_size=size,
                                       depth=1)
        converted = cell_dinov2_to_timm(training_layout(state), module)
        if size == 224:
            assert torch.equal(converted["pos_embed"], pos)
            continue
        # upstream interpolate_pos_encoding: scale_factor (w/14 + 0.1)/sqrt(N), bicubic, no antialias
        grid = pos[:, 1:].reshape(1, 16, 16, DIM).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, scale_factor=(20.1 / 16, 20.1 / 16), mode="bicubic", antialias=False)
        expected = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, 400, DIM)], dim=1)
        torch.testing.assert_close(converted["pos_embed"], expected, rtol=0, atol=0)
    assert "mask_token" in state  # the caller's dict is left as it was


@pytest.mark.parametrize("name", sorted(TIMM_NAMES))
def test_full_training_checkpoints_map_exactly(name: str) -> None:
    """Every entry: the full-depth `teacher` layout (meta tensors) maps to exactly timm's key set and shapes."""
    arch = TIMM_NAMES[name].removesuffix("_patch14_dinov2")
    dim, depth = SIZES[arch]
    state = training_layout(hub_state(dim, depth, swiglu=arch == "vit_giant", meta=True))
    with torch.device("meta"):
        module = timm.create_model(TIMM_NAMES[name], pretrained=False, num_classes=0, img_size=224)
    converted = cell_dinov2_to_timm(state, module)
    expected = module.state_dict()
    assert set(converted) == set(expected)
    assert all(converted[k].shape == expected[k].shape for k in expected)
    assert model_card(name).embed_dim == dim == module.num_features


def test_wrong_files_name_their_keys(small: tuple, tmp_path: Path) -> None:
    _, paths = small
    with pytest.raises(WeightsError, match=r"does not fit 'dinobloom_b'.*shape mismatches: cls_token"):
        load_encoder("dinobloom_b", weights=paths["training"])
    flat_heads = {**hub_state(DIM, 1), "dino_head.mlp.0.weight": torch.zeros(2, 2)}
    torch.save(flat_heads, tmp_path / "flat.pth")  # heads are dropped only from a teacher's `backbone.` layout
    with pytest.raises(WeightsError, match=r"unexpected keys: dino_head\.mlp\.0\.weight"):
        load_encoder("dinobloom_s", weights=tmp_path / "flat.pth")
    open_clip_like = {"visual.trunk.cls_token": torch.zeros(1, 1, DIM), "logit_scale": torch.zeros(())}
    torch.save(open_clip_like, tmp_path / "clip.bin")
    with pytest.raises(WeightsError, match=r"missing keys: cls_token.*unexpected keys: visual\.trunk\.cls_token"):
        load_encoder("reddino_s", weights=tmp_path / "clip.bin")
    with pytest.raises(WeightsError, match=r"DinoBloom-S\.pth.*zenodo\.org/records/10908163"):
        load_encoder("dinobloom_s", weights=tmp_path / "absent.pth")


def test_entries_cards_and_options() -> None:
    assert set(DINOBLOOM) | set(REDDINO) <= set(available_models())
    for name in DINOBLOOM:
        card = model_card(name)
        assert card.fetch["file"] == card.checkpoint_file and "zenodo.org/records/10908163" in card.fetch["url"]
    for name in REDDINO:
        card = model_card(name)
        assert card.fetch["hub"].startswith("Snarcy/RedDino-") and card.fetch["files"] == [card.checkpoint_file]


def test_preprocessing_fingerprint_and_options(small: tuple) -> None:
    _, paths = small
    bloom = load_encoder("dinobloom_s", weights=paths["training"])
    red = load_encoder("reddino_s", weights=paths["timm"], input_size=56)  # pos_embed resampled to 4 x 4
    assert bloom.preprocessing.size == (224, 224) and red.preprocessing.size == (56, 56)
    assert bloom.preprocessing.interpolation == "bilinear" and red.preprocessing.interpolation == "bicubic"
    assert bloom.preprocessing.mean == (0.485, 0.456, 0.406)
    assert "pos_embed:dinov2/final-norm CLS" in bloom.architecture and bloom.fingerprint != red.fingerprint
    with torch.inference_mode():
        assert red.encode(torch.randn(1, 3, 56, 56)).shape == (1, DIM)
    with pytest.raises(MedprobeError, match="unknown option"):
        load_encoder("dinobloom_s", global_pool="avg")
    with pytest.raises(MedprobeError, match="pooling must be one of"):
        load_encoder("reddino_s", pooling="mean")
    with pytest.raises(MedprobeError, match="multiple of the patch size 14"):
        load_encoder("dinobloom_s", input_size=100)
