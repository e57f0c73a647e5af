"""RETFound adapters against independent reference forwards, from checkpoints in the original layouts."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import timm
import torch
import torch.nn.functional as F
from torch.utils.serialization import config as serialization

from medprobe.errors import MedprobeError, WeightsError
from medprobe.models import available_models, load_encoder, model_card
from medprobe.models.retfound import DINOV2_TIMM, dinov2_teacher_to_timm

DIM, DEPTH, HEADS, PATCH = 1024, 24, 16, 16


def _vit_blocks(prefix: str, dim: int, depth: int, rand) -> dict[str, torch.Tensor]:
    state = {}
    for i in range(depth):
        p = f"{prefix}{i}."
        for norm in ("norm1", "norm2"):
            state[p + norm + ".weight"], state[p + norm + ".bias"] = rand(dim, std=0.1, mean=1.0), rand(dim, std=0.1)
        state[p + "attn.qkv.weight"], state[p + "attn.qkv.bias"] = rand(3 * dim, dim, std=dim**-0.5), rand(3 * dim)
        state[p + "attn.proj.weight"], state[p + "attn.proj.bias"] = rand(dim, dim, std=dim**-0.5), rand(dim)
        state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"] = rand(4 * dim, dim, std=dim**-0.5), rand(4 * dim)
        state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"] = rand(dim, 4 * dim, std=0.5 * dim**-0.5), rand(dim)
    return state


def mae_pretrain_state(depth: int = DEPTH) -> dict[str, torch.Tensor]:
    """Random tensors with the keys and shapes of RETFound's MAE pre-training checkpoint (`["model"]`):
    ViT-L/16 encoder at 224 px plus the `mae_vit_large_patch16_dec512d8b` decoder."""
    gen = torch.Generator().manual_seed(0)

    def rand(*shape: int, std: float = 0.02, mean: float = 0.0) -> torch.Tensor:
        return torch.randn(*shape, generator=gen).mul_(std).add_(mean)  # in place: 330 M values, no temporaries

    state = {"cls_token": rand(1, 1, DIM, std=1.0), "pos_embed": rand(1, 197, DIM, std=0.5),
             "patch_embed.proj.weight": rand(DIM, 3, PATCH, PATCH, std=0.03), "patch_embed.proj.bias": rand(DIM)}
    state.update(_vit_blocks("blocks.", DIM, depth, rand))
    state["norm.weight"], state["norm.bias"] = rand(DIM, std=0.1, mean=1.0), rand(DIM, std=0.1)
    state.update({"mask_token": rand(1, 1, 512), "decoder_pos_embed": rand(1, 197, 512),
                  "decoder_embed.weight": rand(512, DIM), "decoder_embed.bias": rand(512)})
    state.update(_vit_blocks("decoder_blocks.", 512, 8, rand))
    state.update({"decoder_norm.weight": rand(512), "decoder_norm.bias": rand(512),
                  "decoder_pred.weight": rand(768, 512), "decoder_pred.bias": rand(768)})
    return state


def reference_tokens(state: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Block-24 output of RETFound's `models_vit.VisionTransformer` (timm 0.3-era ViT, no layer scale)."""
    x = F.conv2d(x, state["patch_embed.proj.weight"], state["patch_embed.proj.bias"], stride=PATCH)
    b = x.shape[0]
    x = torch.cat([state["cls_token"].expand(b, -1, -1), x.flatten(2).transpose(1, 2)], dim=1) + state["pos_embed"]

    def ln(t: torch.Tensor, key: str) -> torch.Tensor:
        return F.layer_norm(t, (DIM,), state[key + ".weight"], state[key + ".bias"], eps=1e-6)

    def lin(t: torch.Tensor, key: str) -> torch.Tensor:
        return F.linear(t, state[key + ".weight"], state[key + ".bias"])

    for i in range(DEPTH):
        p = f"blocks.{i}."
        q, k, v = lin(ln(x, p + "norm1"), p + "attn.qkv").reshape(b, -1, 3, HEADS, DIM // HEADS).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(DIM // HEADS), dim=-1) @ v
        x = x + lin(att.transpose(1, 2).reshape(b, -1, DIM), p + "attn.proj")
        x = x + lin(F.gelu(lin(ln(x, p + "norm2"), p + "mlp.fc1")), p + "mlp.fc2")
    return x


@pytest.fixture(scope="module")
def mae_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, torch.Tensor], Path]:
    state = mae_pretrain_state()
    path = tmp_path_factory.mktemp("retfound") / "RETFound_cfp_weights.pth"
    crc, serialization.save.compute_crc32 = serialization.save.compute_crc32, False
    try:  # the same zip checkpoint torch.load reads, without checksumming 1.3 GB on the way out
        torch.save({"model": state}, path)
    finally:
        serialization.save.compute_crc32 = crc
    return state, path


def test_zoo_names_and_cards() -> None:
    assert {"retfound_mae", "retfound_dinov2"} <= set(available_models())
    mae, dino = model_card("retfound_mae"), model_card("retfound_dinov2")
    assert "RETFound_cfp_weights.pth" in mae.checkpoint_file and "RETFound_mae_natureCFP.pth" in mae.checkpoint_file
    assert "RETFound_dinov2_meh.pth" in dino.checkpoint_file
    assert mae.embed_dim == dino.embed_dim == 1024


@pytest.mark.slow
def test_mae_checkpoint_matches_reference_both_poolings(mae_checkpoint: tuple) -> None:
    state, path = mae_checkpoint
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        tokens = reference_tokens(state, x)
        mean = F.layer_norm(tokens[:, 1:].mean(dim=1), (DIM,), eps=1e-6)  # fc_norm left at (1, 0), as upstream
        cls = F.layer_norm(tokens[:, 0], (DIM,), state["norm.weight"], state["norm.bias"], eps=1e-6)
        default = load_encoder("retfound_mae", weights=path)
        got_mean = default.encode(x)
        got_cls = load_encoder("retfound_mae", weights=path, pooling="cls").encode(x)
    assert default.preprocessing.size == (224, 224) and default.preprocessing.channels == 3
    assert got_mean.shape == (1, DIM)
    assert (got_mean - mean).abs().max().item() < 1e-4
    assert (got_cls - cls).abs().max().item() < 1e-4
    assert "fc_norm" in default.architecture and "pos_embed:mae" in default.architecture


def test_wrong_architecture_names_missing_and_unexpected_keys(tmp_path: Path) -> None:
    """A ViT-L/16 with DINOv2-style layer scale and one block short: every difference is named."""
    state = {k: torch.zeros(1) for k in ("cls_token", "blocks.0.ls1.gamma", "decoder_norm.weight")}
    path = tmp_path / "other.pth"
    torch.save({"model": state}, path)
    with pytest.raises(WeightsError) as caught:
        load_encoder("retfound_mae", weights=path)
    message = str(caught.value)
    assert "does not fit 'retfound_mae'" in message
    assert "missing keys: pos_embed" in message and "unexpected keys: blocks.0.ls1.gamma" in message
    assert "decoder_norm" not in message  # the MAE decoder is dropped on purpose, not reported


def test_missing_file_names_the_release_and_where_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match=r"RETFound_cfp_weights\.pth.*huggingface\.co/YukunZhou"):
        load_encoder("retfound_mae", weights=tmp_path / "absent.pth")
    with pytest.raises(WeightsError, match=r"RETFound_dinov2_meh\.pth.*huggingface\.co/YukunZhou"):
        load_encoder("retfound_dinov2", weights=tmp_path / "absent.pth")


def _teacher(pos_rows: int) -> dict[str, torch.Tensor]:
    """A RETFound-DINOv2 `["teacher"]` dict: `backbone.` ViT-L/14 (meta tensors, real pos_embed) + heads."""
    with torch.device("meta"):
        module = timm.create_model(DINOV2_TIMM, pretrained=False, num_classes=0, img_size=518)
    state = {f"backbone.{k}": v for k, v in module.state_dict().items()}
    state["backbone.pos_embed"] = torch.randn(1, pos_rows, DIM, generator=torch.Generator().manual_seed(pos_rows))
    state["backbone.mask_token"] = torch.empty(1, DIM, device="meta")
    for head in ("dino_head", "ibot_head"):
        state[f"{head}.mlp.0.weight"] = torch.empty(2048, DIM, device="meta")
        state[f"{head}.last_layer.weight_v"] = torch.empty(65536, 256, device="meta")
    return state


@pytest.mark.parametrize("pos_rows", [1370, 257])
def test_dinov2_teacher_maps_exactly_and_resamples_like_upstream(pos_rows: int) -> None:
    teacher = _teacher(pos_rows)
    with torch.device("meta"):
        module = timm.create_model(DINOV2_TIMM, pretrained=False, num_classes=0, img_size=224)
    converted = dinov2_teacher_to_timm({"teacher": teacher}, module)
    expected = module.state_dict()
    assert set(converted) == set(expected)
    assert all(converted[k].shape == expected[k].shape for k in expected)
    pos = teacher["backbone.pos_embed"]
    if pos_rows == 257:
        torch.testing.assert_close(converted["pos_embed"], pos, rtol=0, atol=0)
    else:  # RETFound's util/pos_embed.interpolate_pos_embed: bicubic to size, no antialias, cls row kept
        grid = pos[:, 1:].reshape(1, 37, 37, DIM).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(16, 16), mode="bicubic", align_corners=False)
        resampled = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).flatten(1, 2)], dim=1)
        torch.testing.assert_close(converted["pos_embed"], resampled, rtol=0, atol=0)


@pytest.mark.slow
def test_dinov2_random_init_and_options() -> None:
    encoder = load_encoder("retfound_dinov2")
    assert encoder.embed_dim == 1024 and encoder.weights_label == "random-init"
    assert encoder.preprocessing.size == (224, 224)
    with torch.inference_mode():
        assert encoder.encode(torch.randn(1, 3, 224, 224)).shape == (1, 1024)
    with pytest.raises(MedprobeError, match="unknown option"):
        load_encoder("retfound_dinov2", pooling="mean")
    with pytest.raises(MedprobeError, match="pooling must be one of"):
        load_encoder("retfound_mae", pooling="token")
    with pytest.raises(MedprobeError, match="multiple of the patch size 16"):
        load_encoder("retfound_mae", input_size=100)
