"""`hf:` models and the RAD-DINO / MedSigLIP / SigLIP zoo entries against transformers' own forward.

Each checkpoint is a tiny random network of the upstream class (Dinov2Model, SiglipModel, CLIPModel) written with
`save_pretrained`; the reference is that same in-memory network, so a key that medprobe failed to load, the wrong
tower, the wrong pooling or a missing position-embedding interpolation all show as a difference. No test may
touch the network: a guard makes every socket connection fail.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
from pathlib import Path
from typing import Any

import huggingface_hub
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import (
    CLIPConfig,
    CLIPModel,
    Dinov2Config,
    Dinov2Model,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersModel,
    SiglipConfig,
    SiglipModel,
)

import medprobe.models.hf_zoo as hf_zoo  # importing registers the zoo entries
from medprobe.errors import MedprobeError, WeightsError
from medprobe.models import available_models, load_encoder, model_card
from medprobe.models.hf_vision import HFVisionEncoder, config_sha256

TOL = 1e-4
TINY_VIT = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 28, "patch_size": 14}
TINY_TEXT = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 2,
             "vocab_size": 64, "max_position_embeddings": 16, "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 0}
RAD_DINO_PREPROCESSOR = {"crop_size": {"height": 28, "width": 28}, "do_center_crop": True, "do_normalize": True,
                         "do_rescale": True, "do_resize": True, "image_mean": [0.5307, 0.5307, 0.5307],
                         "image_processor_type": "BitImageProcessor", "image_std": [0.2583, 0.2583, 0.2583],
                         "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 28}}
SIGLIP_PREPROCESSOR = {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
                       "image_processor_type": "SiglipImageProcessor", "image_std": [0.5, 0.5, 0.5], "resample": 3,
                       "rescale_factor": 0.00392156862745098, "size": {"height": 28, "width": 28}}


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"network access in an offline test: {args[1:] or kwargs}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def seeded(build: Any, seed: int) -> Any:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build().eval()


def save(model: torch.nn.Module, folder: Path, preprocessor: dict | None) -> Path:
    model.save_pretrained(folder)  # type: ignore[operator]
    if preprocessor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Path]]:
    """Tiny random Dinov2Model / SiglipModel / CLIPModel checkpoints, each with the in-memory network it holds."""
    root = tmp_path_factory.mktemp("hf")
    vit = {**TINY_VIT, "intermediate_size": 37}
    dino = seeded(lambda: Dinov2Model(Dinov2Config(**TINY_VIT, mlp_ratio=2, layerscale_value=0.5)), 0)
    siglip = seeded(lambda: SiglipModel(SiglipConfig(vision_config=vit, text_config=TINY_TEXT)), 1)
    clip = seeded(lambda: CLIPModel(CLIPConfig(vision_config=vit, text_config=TINY_TEXT, projection_dim=16)), 2)
    return {"dinov2": (dino, save(dino, root / "dinov2", RAD_DINO_PREPROCESSOR)),
            "siglip": (siglip, save(siglip, root / "siglip", SIGLIP_PREPROCESSOR)),
            "clip": (clip, save(clip, root / "clip", None))}


def images(size: int, n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return (a - b).abs().max().item()


@pytest.mark.parametrize("size", [28, 42])
def test_rad_dino_is_dinov2_cls_and_patch_tokens(tiny: dict, size: int) -> None:
    model, folder = tiny["dinov2"]
    encoder = load_encoder("rad_dino", weights=folder, input_size=size)
    x = images(size)
    with torch.inference_mode():
        embedding, tokens = encoder.encode_with_tokens(x)
        out = model(pixel_values=x)
    assert encoder.embed_dim == encoder.token_dim == 32 and encoder.pretrained
    assert diff(embedding, out.pooler_output) < TOL and diff(embedding, out.last_hidden_state[:, 0]) < TOL
    assert tokens.shape == (2, (size // 14) ** 2, 32) and diff(tokens, out.last_hidden_state[:, 1:]) < TOL
    control = load_encoder(f"hf:{folder}", random_init=True, input_size=size, seed=7)
    with torch.inference_mode():
        assert diff(control.encode(x), out.pooler_output) > 1e-2  # the comparison can fail


def test_rad_dino_reads_upstream_preprocessing(tiny: dict) -> None:
    encoder = load_encoder("rad_dino", weights=tiny["dinov2"][1])
    spec = encoder.preprocessing
    assert spec.size == (28, 28) and spec.interpolation == "bicubic"  # crop_size of preprocessor_config.json
    assert spec.mean == (0.5307,) * 3 and spec.std == (0.2583,) * 3
    assert encoder.options["preprocessing"] == "preprocessor_config.json"
    no_file = load_encoder("rad_dino", weights=copy_without(tiny["dinov2"][1], "preprocessor_config.json"))
    assert no_file.preprocessing.size == (518, 518) and no_file.preprocessing.mean == (0.5307,) * 3
    assert no_file.options["preprocessing"].startswith("defaults:rad_dino")
    assert model_card("rad_dino").fetch["hub"] == "microsoft/rad-dino"


@pytest.mark.parametrize("name", ["medsiglip_448", "siglip_so400m_patch14_384"])
@pytest.mark.parametrize("size", [28, 42])
def test_siglip_entries_are_the_vision_tower_pooler(tiny: dict, name: str, size: int) -> None:
    model, folder = tiny["siglip"]
    encoder = load_encoder(name, weights=folder, input_size=size)
    x = images(size, seed=1)
    with torch.inference_mode():
        embedding, tokens = encoder.encode_with_tokens(x)
        out = model.get_image_features(pixel_values=x, interpolate_pos_encoding=size != 28)
    assert diff(embedding, out.pooler_output) < TOL
    assert tokens.shape == (2, (size // 14) ** 2, 32) and diff(tokens, out.last_hidden_state) < TOL  # no CLS
    assert "vision tower of SiglipModel" in encoder.architecture and "pooler_output" in encoder.architecture
    assert not any(n.startswith("text_model") for n, _ in encoder.module.named_parameters())
    assert diff(embedding, torch.nn.functional.normalize(embedding, dim=-1)) > 1e-2  # not L2-normalised
    assert model_card(name).fetch["hub"].startswith("google/") and name in available_models()


def test_pooling_options_are_what_they_say(tiny: dict) -> None:
    dino, dino_folder = tiny["dinov2"]
    siglip, siglip_folder = tiny["siglip"]
    clip, clip_folder = tiny["clip"]
    x = images(28, seed=2)
    with torch.inference_mode():
        d, s, c = dino(pixel_values=x), siglip.vision_model(pixel_values=x), clip.vision_model(pixel_values=x)
        got = {(m, p): load_encoder(f"hf:{folder}", pooling=p).encode(x)
               for m, folder, pools in (("dinov2", dino_folder, ("cls", "mean", "pooler")),
                                        ("siglip", siglip_folder, ("mean", "pooler")),
                                        ("clip", clip_folder, ("cls", "mean", "pooler")))
               for p in pools}
    assert diff(got["dinov2", "cls"], d.last_hidden_state[:, 0]) < TOL
    assert diff(got["dinov2", "mean"], d.last_hidden_state[:, 1:].mean(dim=1)) < TOL  # CLS left out
    assert diff(got["dinov2", "pooler"], d.pooler_output) < TOL
    assert diff(got["siglip", "mean"], s.last_hidden_state.mean(dim=1)) < TOL  # no prefix token to leave out
    assert diff(got["siglip", "pooler"], s.pooler_output) < TOL and diff(got["siglip", "mean"], s.pooler_output) > 1e-3
    assert diff(got["clip", "cls"], c.last_hidden_state[:, 0]) < TOL
    assert diff(got["clip", "mean"], c.last_hidden_state[:, 1:].mean(dim=1)) < TOL
    assert diff(got["clip", "pooler"], c.pooler_output) < TOL and diff(got["clip", "cls"], c.pooler_output) > 1e-3
    defaults = {m: load_encoder(f"hf:{f}").options["pooling"] for m, f in
                (("dinov2", dino_folder), ("siglip", siglip_folder), ("clip", clip_folder))}
    assert defaults == {"dinov2": "cls", "siglip": "pooler", "clip": "pooler"}
    with pytest.raises(MedprobeError, match="no CLS token"):
        load_encoder(f"hf:{siglip_folder}", pooling="cls")


def test_mean_leaves_out_register_tokens(tmp_path: Path) -> None:
    model = seeded(lambda: Dinov2WithRegistersModel(Dinov2WithRegistersConfig(**TINY_VIT, num_register_tokens=4)), 3)
    encoder = load_encoder(f"hf:{save(model, tmp_path / 'reg', None)}", pooling="mean")
    x = images(42, seed=3)
    with pytest.raises(MedprobeError, match="built for"):
        encoder.encode(x)
    encoder = load_encoder(f"hf:{tmp_path / 'reg'}", pooling="mean", input_size=42)
    with torch.inference_mode():
        embedding, tokens = encoder.encode_with_tokens(x)
        hidden = model(pixel_values=x).last_hidden_state  # [CLS, 4 registers, 9 patches]
    assert diff(tokens, hidden[:, 5:]) < TOL and diff(embedding, hidden[:, 5:].mean(dim=1)) < TOL
    assert diff(embedding, hidden[:, 1:].mean(dim=1)) > 1e-3


def make_cache(root: Path, repo: str, folder: Path, commit: str) -> Path:
    """The huggingface_hub cache layout: blobs, a snapshot of symlinks, refs/main → commit."""
    repo_dir = root / f"models--{repo.replace('/', '--')}"
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo_dir / "blobs").mkdir()
    for i, file in enumerate(sorted(folder.iterdir())):
        blob = repo_dir / "blobs" / f"blob{i}"
        shutil.copy(file, blob)
        (snapshot / file.name).symlink_to(blob)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(commit)
    return snapshot


def test_hub_reference_reads_the_local_cache_only(tiny: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model, folder = tiny["dinov2"]
    commit = "0123456789abcdef0123456789abcdef01234567"
    make_cache(tmp_path / "home" / "hub", "acme/tiny-dino", folder, commit)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    calls: list[tuple[bool, bool]] = []
    real = huggingface_hub.snapshot_download

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append((kwargs.get("local_files_only", False), huggingface_hub.constants.is_offline_mode()))
        return real(*args, **kwargs)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", spy)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    x = images(28)
    direct = load_encoder(f"hf:{folder}")
    for options in ({}, {"revision": commit}):
        cached = load_encoder("hf:acme/tiny-dino", **options)
        assert cached.weights_sha256 == direct.weights_sha256
        assert cached.options["config_sha256"] == direct.options["config_sha256"]
        with torch.inference_mode():
            assert diff(cached.encode(x), model(pixel_values=x).pooler_output) < TOL
    assert calls == [(True, True), (True, True)]  # local files only, and hub offline mode forced on meanwhile
    assert not huggingface_hub.constants.is_offline_mode()  # ... and restored
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    with pytest.raises(WeightsError, match=r"acme/tiny-dino at revision 'main' is not in the local hub cache "
                                           r".*elsewhere.*medprobe models fetch hf:acme/tiny-dino.*"
                                           r"huggingface-cli download acme/tiny-dino --revision main"):
        load_encoder("hf:acme/tiny-dino")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "home" / "hub"))
    with pytest.raises(WeightsError, match="acme/absent at revision 'main'"):
        load_encoder("hf:acme/absent")
    with pytest.raises(WeightsError, match="acme/tiny-dino at revision 'v2'"):
        load_encoder("hf:acme/tiny-dino", revision="v2")


def test_weights_field_names_the_folder(tiny: dict, tmp_path: Path) -> None:
    folder = tiny["dinov2"][1]
    labelled = load_encoder("hf:microsoft/rad-dino", weights=folder)  # a label: no cache lookup
    assert labelled.name == "hf:microsoft/rad-dino"
    assert labelled.weights_sha256 == load_encoder(f"hf:{folder}").weights_sha256
    with pytest.raises(MedprobeError, match="name it once"):
        load_encoder(f"hf:{tmp_path}", weights=folder)
    with pytest.raises(MedprobeError, match="revision"):
        load_encoder("hf:microsoft/rad-dino", weights=folder, revision="main")
    with pytest.raises(MedprobeError, match="revision is for hf:<org>/<name>"):
        load_encoder(f"hf:{folder}", revision="main")
    with pytest.raises(WeightsError, match="not a file"):
        load_encoder("hf:x", weights=folder / "model.safetensors")
    with pytest.raises(WeightsError, match="not found"):
        load_encoder("rad_dino", weights=tmp_path / "absent")
    with pytest.raises(MedprobeError, match="neither a folder"):
        load_encoder("hf:just-a-name")


def copy_without(folder: Path, *names: str, to: Path | None = None) -> Path:
    target = to or folder.parent / f"{folder.name}-without-{'-'.join(names)}"
    if not target.exists():
        shutil.copytree(folder, target, ignore=shutil.ignore_patterns(*names))
    return target


def edit_weights(folder: Path, change: Any) -> None:
    state = load_file(folder / "model.safetensors")
    change(state)
    save_file(state, folder / "model.safetensors", metadata={"format": "pt"})


def test_wrong_architecture_fails_naming_keys(tiny: dict, tmp_path: Path) -> None:
    dino_folder, siglip_folder = tiny["dinov2"][1], tiny["siglip"][1]
    mixed = copy_without(siglip_folder, "model.safetensors", to=tmp_path / "mixed")
    shutil.copy(dino_folder / "model.safetensors", mixed)
    with pytest.raises(WeightsError, match=r"does not fit 'medsiglip_448' as SiglipVisionModel \(missing keys: "
                                           r"embeddings\.patch_embedding.*unexpected keys: embeddings\.cls_token"):
        load_encoder("medsiglip_448", weights=mixed)
    with pytest.raises(WeightsError, match=r"model_type 'siglip' is not a 'rad_dino'"):
        load_encoder("rad_dino", weights=siglip_folder)

    extra = copy_without(siglip_folder, to=tmp_path / "extra")
    edit_weights(extra, lambda s: s.update({"vision_model.extra_table": torch.zeros(3)}))
    with pytest.raises(WeightsError, match=r"unexpected keys: extra_table"):
        load_encoder(f"hf:{extra}")
    missing = copy_without(siglip_folder, to=tmp_path / "missing")
    edit_weights(missing, lambda s: s.pop("vision_model.post_layernorm.weight"))
    with pytest.raises(WeightsError, match=r"missing keys: post_layernorm\.weight"):
        load_encoder(f"hf:{missing}")
    reshaped = copy_without(dino_folder, to=tmp_path / "reshaped")
    config = json.loads((reshaped / "config.json").read_text())
    (reshaped / "config.json").write_text(json.dumps({**config, "mlp_ratio": 3}))
    with pytest.raises(WeightsError, match=r"shape mismatches: .*mlp\.fc1\.weight"):
        load_encoder(f"hf:{reshaped}")


def test_fingerprint_covers_config_and_weights(tiny: dict, tmp_path: Path) -> None:
    folder = copy_without(tiny["dinov2"][1], to=tmp_path / "model")
    base = load_encoder(f"hf:{folder}")
    assert base.fingerprint == load_encoder(f"hf:{folder}").fingerprint

    config = json.loads((folder / "config.json").read_text())
    reordered = {"transformers_version": "0.0.1", **dict(reversed(list(config.items())))}
    (folder / "config.json").write_text(json.dumps(reordered, indent=4))
    assert load_encoder(f"hf:{folder}").fingerprint == base.fingerprint  # canonical JSON, provenance fields left out
    (folder / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-5}))
    changed_config = load_encoder(f"hf:{folder}")
    assert changed_config.options["config_sha256"] != base.options["config_sha256"]
    assert changed_config.weights_sha256 == base.weights_sha256 and changed_config.fingerprint != base.fingerprint
    (folder / "config.json").write_text(json.dumps(config))

    edit_weights(folder, lambda s: s["layernorm.bias"].add_(1e-3))
    changed_weights = load_encoder(f"hf:{folder}")
    assert changed_weights.weights_sha256 != base.weights_sha256 and changed_weights.fingerprint != base.fingerprint
    assert config_sha256({"a": 1, "b": {"_name_or_path": "x"}}) == config_sha256({"b": {}, "a": 1})


def test_random_init_control_needs_the_flag(tiny: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    config_only = copy_without(tiny["dinov2"][1], "model.safetensors")
    with pytest.raises(WeightsError, match="random_init: true"):
        load_encoder(f"hf:{config_only}")
    control = load_encoder(f"hf:{config_only}", random_init=True)
    assert control.weights_label == "random-init" and control.options["init_seed"] == 0 and not control.pretrained
    x = images(28)
    with torch.inference_mode():
        same = load_encoder(f"hf:{config_only}", random_init=True).encode(x)
        assert diff(control.encode(x), same) == 0.0
        assert diff(control.encode(x), load_encoder(f"hf:{config_only}", random_init=True, seed=1).encode(x)) > 1e-3
    tiny_entry = dataclasses.replace(hf_zoo.ENTRIES["rad_dino"], config={"model_type": "dinov2", **TINY_VIT})
    monkeypatch.setitem(hf_zoo.ENTRIES, "rad_dino", tiny_entry)
    zoo_control = load_encoder("rad_dino", input_size=28)  # no weights: upstream's architecture, random
    assert zoo_control.weights_label == "random-init" and zoo_control.preprocessing.mean == (0.5307,) * 3


def test_frozen_on_device_and_inputs_checked(tiny: dict) -> None:
    encoder = load_encoder(f"hf:{tiny['siglip'][1]}")
    assert isinstance(encoder, HFVisionEncoder)
    assert not encoder.module.training and not any(p.requires_grad for p in encoder.module.parameters())
    assert encoder.to(torch.device("cpu")) is encoder and encoder.device == torch.device("cpu")
    with pytest.raises(MedprobeError, match=r"built for \(B, C, 28, 28\).*input_size"):
        encoder.encode(images(42))
    with pytest.raises(MedprobeError, match="multiple of the patch size 14"):
        load_encoder(f"hf:{tiny['siglip'][1]}", input_size=30)
    with pytest.raises(MedprobeError, match=r"unknown option\(s\) \['size'\]"):
        load_encoder(f"hf:{tiny['siglip'][1]}", size=28)
    with pytest.raises(MedprobeError, match="pooling must be one of"):
        load_encoder("medsiglip_448", weights=tiny["siglip"][1], pooling="max")
    assert "huggingface.co/acme/x" in model_card("hf:acme/x").source


def test_the_guard_refuses_sockets() -> None:
    with pytest.raises(RuntimeError, match="network access"), socket.create_connection(("127.0.0.1", 9), timeout=1):
        pass
