import json
import shutil
from pathlib import Path

import pytest
import torch

import medprobe.models.ldae  # noqa: F401 - registers 'ldae'
from medprobe.errors import WeightsError
from medprobe.models import load_encoder
from medprobe.models.ldae import PretrainSummary


def test_trained_folder_loads_as_zoo_encoder_with_finite_vectors(
    trained_ldae: tuple[Path, Path, PretrainSummary],
) -> None:
    _, out, _ = trained_ldae
    encoder = load_encoder("ldae", weights=out)
    spec = encoder.preprocessing
    assert (spec.spatial_dims, spec.size, spec.channels, spec.mean, spec.std) == (3, (16, 16, 16), 1, None, None)
    with torch.inference_mode():
        vectors = encoder.encode(torch.rand(3, 1, 16, 16, 16))
    assert vectors.shape == (3, encoder.embed_dim) == (3, 16)
    assert torch.isfinite(vectors).all()
    assert encoder.pretrained and encoder.weights_label.startswith("sha256:")
    by_file = load_encoder("ldae", weights=out / "ldae.safetensors")
    assert by_file.fingerprint == encoder.fingerprint
    assert load_encoder("ldae", config="tiny").fingerprint != encoder.fingerprint  # random-init control


def test_wrong_or_missing_weights_raise_a_clear_weights_error(
    trained_ldae: tuple[Path, Path, PretrainSummary], tmp_path: Path,
) -> None:
    _, out, _ = trained_ldae
    with pytest.raises(WeightsError, match="not found"):
        load_encoder("ldae", weights=tmp_path / "missing.safetensors")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(out / "checkpoints", unfinished / "checkpoints")
    with pytest.raises(WeightsError, match="--resume"):
        load_encoder("ldae", weights=unfinished)
    lonely = tmp_path / "lonely.safetensors"
    shutil.copy(out / "ldae.safetensors", lonely)
    with pytest.raises(WeightsError, match="config"):
        load_encoder("ldae", weights=lonely)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "ldae.safetensors").write_bytes(b"\x00" * 64)
    shutil.copy(out / "ldae.json", garbage / "ldae.json")
    with pytest.raises(WeightsError, match="not a loadable"):
        load_encoder("ldae", weights=garbage)
    stage1 = next((out / "checkpoints").glob("stage1-*[0-9].safetensors"))  # autoencoder only: no semantic keys
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    shutil.copy(stage1, wrong / "ldae.safetensors")
    shutil.copy(out / "ldae.json", wrong / "ldae.json")
    with pytest.raises(WeightsError, match=r"does not match the digest recorded in ldae\.json"):
        load_encoder("ldae", weights=wrong)
    config = json.loads((wrong / "ldae.json").read_text())
    del config["weights_sha256"]  # a config from before digests: the strict key check still refuses the file
    (wrong / "ldae.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="missing keys"):
        load_encoder("ldae", weights=wrong)
