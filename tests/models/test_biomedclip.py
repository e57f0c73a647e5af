"""BiomedCLIP's image tower against open_clip itself.

A tiny open_clip model of BiomedCLIP's structure (a timm ViT trunk in open_clip's TimmModel with `timm_pool: ""` and a
bias-free linear projection; a text tower under `text.`, as in a CustomTextCLIP) is written as a hub snapshot
(`open_clip_config.json` + weights), loaded by open_clip's own `local-dir:` factory and by medprobe, and
`encode` is compared with upstream's `model.encode_image(x)`. Only the text tower differs from the real one: a small
open_clip text transformer instead of PubMedBERT, which would make `transformers` download its config.
"""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from medprobe.errors import MedprobeError, WeightsError
from medprobe.models import biomedclip  # noqa: F401 - registers the builder
from medprobe.models.biomedclip import CONFIG_FILE, HUB_CONFIG
from medprobe.models.registry import load_encoder, model_card
from medprobe.models.weights import sha256_of

TINY_CONFIG = {
    "model_cfg": {
        "embed_dim": 32,
        "custom_text": True,
        "vision_cfg": {**HUB_CONFIG["model_cfg"]["vision_cfg"], "timm_model_name": "vit_tiny_patch16_224"},
        "text_cfg": {"context_length": 16, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1},
    },
    "preprocess_cfg": HUB_CONFIG["preprocess_cfg"],
}


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, torch.nn.Module, dict[str, torch.Tensor]]:
    """(folder, open_clip's model loaded from it, its state dict): a perturbed random model in the hub layout."""
    folder = tmp_path_factory.mktemp("biomedclip_tiny")
    (folder / CONFIG_FILE).write_text(json.dumps(TINY_CONFIG), encoding="utf-8")
    torch.manual_seed(0)
    model = open_clip.create_model(f"local-dir:{folder}")  # no weights in the folder yet: random init
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():  # norms away from (1, 0) and biases away from 0, so that a skipped layer shows
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    torch.save(state, folder / "open_clip_pytorch_model.bin")
    reference = open_clip.create_model(f"local-dir:{folder}").eval()  # upstream's loader, strict
    assert torch.equal(reference.visual.head.proj.weight, state["visual.head.proj.weight"])
    assert any(k.startswith("text.") for k in state) and "logit_scale" in state
    return folder, reference, state


def test_image_tower_matches_open_clip_encode_image(snapshot: tuple) -> None:
    folder, reference, _ = snapshot
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(2))
    encoder = load_encoder("biomedclip", weights=folder)
    with torch.inference_mode():
        expected = reference.encode_image(x)
        trunk_tokens = reference.visual.trunk.forward_features(x)[:, 1:]
        got, tokens = encoder.encode_with_tokens(x)
        torch.testing.assert_close(encoder.encode(x[:1]), got[:1], rtol=0, atol=1e-5)  # batch of 1: same path
    assert got.shape == (2, 32) and encoder.embed_dim == 32
    assert (got - expected).abs().max().item() < 1e-4
    assert not torch.allclose(got.norm(dim=-1), torch.ones(2))  # upstream's default: not L2-normalised
    assert tokens.shape == (2, 196, 192) and encoder.token_dim == 192
    assert (tokens - trunk_tokens).abs().max().item() < 1e-4
    assert encoder.weights_sha256 == sha256_of(folder / "open_clip_pytorch_model.bin")
    assert encoder.preprocessing.mean == tuple(HUB_CONFIG["preprocess_cfg"]["mean"])
    assert encoder.preprocessing.size == (224, 224) and encoder.preprocessing.interpolation == "bicubic"
    assert "vit_tiny_patch16_224" in encoder.architecture and "not L2-normalised" in encoder.architecture


def test_safetensors_file_with_config_beside_it(snapshot: tuple, tmp_path: Path) -> None:
    folder, reference, state = snapshot
    (tmp_path / CONFIG_FILE).write_text((folder / CONFIG_FILE).read_text(encoding="utf-8"), encoding="utf-8")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "open_clip_model.safetensors"))
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "open_clip_pytorch_model.bin")
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(3))
    by_folder = load_encoder("biomedclip", weights=tmp_path)  # safetensors first, as open_clip's local-dir loader
    by_file = load_encoder("biomedclip", weights=tmp_path / "open_clip_pytorch_model.bin")  # DDP-wrapped copy
    assert by_folder.weights_sha256 == sha256_of(tmp_path / "open_clip_model.safetensors")
    with torch.inference_mode():
        expected = reference.encode_image(x)
        assert (by_folder.encode(x) - expected).abs().max().item() < 1e-4
        assert (by_file.encode(x) - expected).abs().max().item() < 1e-4


def test_text_keys_are_skipped_and_anything_else_is_reported(snapshot: tuple, tmp_path: Path) -> None:
    folder, _, state = snapshot
    (tmp_path / CONFIG_FILE).write_text((folder / CONFIG_FILE).read_text(encoding="utf-8"), encoding="utf-8")
    visual = {k: v for k, v in state.items() if k.startswith("visual.") and k != "visual.trunk.norm.bias"}
    plain_clip_text = {k: torch.zeros(1) for k in ("transformer.resblocks.0.attn.in_proj_weight",
                                                   "token_embedding.weight", "positional_embedding",
                                                   "ln_final.weight", "text_projection", "logit_scale")}
    torch.save({**visual, **plain_clip_text, "extra.weight": torch.zeros(1)}, tmp_path / "open_clip_pytorch_model.bin")
    with pytest.raises(WeightsError) as caught:
        load_encoder("biomedclip", weights=tmp_path)
    message = str(caught.value)
    assert "missing keys: trunk.norm.bias" in message and "unexpected keys: extra.weight" in message
    assert "token_embedding" not in message and "logit_scale" not in message


def test_wrong_files_are_refused_with_their_keys(snapshot: tuple, tmp_path: Path) -> None:
    folder, _, _ = snapshot
    dinov2_like = {"cls_token": torch.zeros(1, 1, 8), "pos_embed": torch.zeros(1, 5, 8), "mask_token": torch.zeros(8)}
    torch.save(dinov2_like, tmp_path / "open_clip_pytorch_model.bin")
    with pytest.raises(WeightsError, match=CONFIG_FILE):  # no config beside the weights
        load_encoder("biomedclip", weights=tmp_path / "open_clip_pytorch_model.bin")
    (tmp_path / CONFIG_FILE).write_text((folder / CONFIG_FILE).read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(WeightsError, match=r"no 'visual\.\*' tensors.*cls_token, pos_embed, mask_token"):
        load_encoder("biomedclip", weights=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(WeightsError, match=r"open_clip_model\.safetensors or open_clip_pytorch_model\.bin"):
        load_encoder("biomedclip", weights=empty)
    with pytest.raises(WeightsError, match=r"huggingface\.co/microsoft/BiomedCLIP"):
        load_encoder("biomedclip", weights=tmp_path / "absent.bin")


def test_random_init_uses_the_hub_config_and_agrees_with_the_card() -> None:
    encoder = load_encoder("biomedclip")
    card = model_card("biomedclip")
    assert encoder.weights_label == "random-init" and encoder.embed_dim == card.embed_dim == 512
    assert encoder.token_dim == 768 and "vit_base_patch16_224" in encoder.architecture
    assert list(encoder.preprocessing.mean) == card.preprocessing["mean"]
    assert card.fetch["hub"] == "microsoft/BiomedCLIP-PubMedBERT_256-vit_base_patch16_224"
    assert set(card.fetch["files"]) == {"open_clip_config.json", "open_clip_pytorch_model.bin"}
    assert encoder.module.head.proj.out_features == 512 and encoder.module.head.proj.bias is None
    with torch.inference_mode(), pytest.raises(MedprobeError, match=r"takes \(B, 3, 224, 224\)"):
        encoder.encode(torch.randn(1, 3, 112, 112))
    with pytest.raises(MedprobeError, match="unknown option"):
        load_encoder("biomedclip", input_size=336)
