"""LDAE checkpoints carry digests: a flipped bit in the exported model or a stage checkpoint is refused naming
the file, never loaded as an encoder or resumed from."""

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

import medprobe.models.ldae  # noqa: F401 - registers 'ldae'
from medprobe.errors import MedprobeError, WeightsError
from medprobe.models import load_encoder
from medprobe.models.ldae import PretrainSummary
from medprobe.models.ldae.checkpoint import CheckpointError, load_stage


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 1 << (offset % 8)
    path.write_bytes(bytes(data))


def _offsets(path: Path, count: int = 12) -> list[int]:
    """Spread over the whole file: the safetensors header, the tensors, the end."""
    return sorted(set(np.linspace(0, path.stat().st_size - 1, count).astype(int).tolist()))


def test_a_flipped_bit_in_the_exported_weights_is_refused_naming_the_file(
    trained_ldae: tuple[Path, Path, PretrainSummary], tmp_path: Path,
) -> None:
    _, out, _ = trained_ldae
    offsets = _offsets(out / "ldae.safetensors")
    for offset in offsets:
        copy = tmp_path / f"flip{offset}"
        shutil.copytree(out, copy, ignore=shutil.ignore_patterns("checkpoints", "volumes*"))
        _flip(copy / "ldae.safetensors", offset)
        with pytest.raises(WeightsError, match=r"ldae\.safetensors") as caught:
            load_encoder("ldae", weights=copy)
        assert str(copy / "ldae.safetensors") in str(caught.value)
        shutil.rmtree(copy)
    print(f"ldae.safetensors: {len(offsets)} offsets flipped, {len(offsets)} refused, 0 different")


def test_a_flipped_bit_in_the_config_is_refused_or_changes_nothing(
    trained_ldae: tuple[Path, Path, PretrainSummary], tmp_path: Path,
) -> None:
    _, out, _ = trained_ldae
    fingerprint = load_encoder("ldae", weights=out).fingerprint
    refused = 0
    offsets = _offsets(out / "ldae.json", 40)
    for offset in offsets:
        copy = tmp_path / f"flip{offset}"
        shutil.copytree(out, copy, ignore=shutil.ignore_patterns("checkpoints", "volumes*"))
        _flip(copy / "ldae.json", offset)
        try:
            encoder = load_encoder("ldae", weights=copy)
        except WeightsError as exc:
            assert "ldae.json" in str(exc) or "ldae.safetensors" in str(exc), offset
            refused += 1
        else:  # a flip in what does not shape the network (the training schedule, a step count)
            assert encoder.fingerprint == fingerprint, offset
        shutil.rmtree(copy)
    print(f"ldae.json: {len(offsets)} offsets flipped, {refused} refused, {len(offsets) - refused} same network")
    assert refused > len(offsets) // 2


def test_a_changed_network_config_is_refused(trained_ldae: tuple[Path, Path, PretrainSummary],
                                             tmp_path: Path) -> None:
    _, out, _ = trained_ldae
    copy = tmp_path / "run"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("checkpoints", "volumes*"))
    config = json.loads((copy / "ldae.json").read_text())
    config["config"]["data"]["fit"] = "crop_or_pad" if config["config"]["data"]["fit"] == "resize" else "resize"
    (copy / "ldae.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"ldae\.json: does not match the digest"):
        load_encoder("ldae", weights=copy)


@pytest.mark.parametrize("which", ["model", "optimizer"])
def test_a_flipped_bit_in_a_stage_checkpoint_is_refused_naming_the_file(
    trained_ldae: tuple[Path, Path, PretrainSummary], tmp_path: Path, which: str,
) -> None:
    _, out, _ = trained_ldae
    record = load_stage(out, 2)
    assert record is not None and set(record.sha256) == {record.model, record.optimizer}
    name = getattr(record, which)
    for offset in _offsets(out / "checkpoints" / name, 6):
        copy = tmp_path / f"flip{offset}"
        shutil.copytree(out / "checkpoints", copy / "checkpoints")
        _flip(copy / "checkpoints" / name, offset)
        with pytest.raises(CheckpointError, match=r"stage2\.json") as caught:
            load_stage(copy, 2)
        assert str(copy / "checkpoints" / name) in str(caught.value) and "pretrain ldae" in str(caught.value)
        assert isinstance(caught.value, MedprobeError) and caught.value.exit_code == 2
        shutil.rmtree(copy)


def test_folders_from_before_digests_load_with_a_warning(trained_ldae: tuple[Path, Path, PretrainSummary],
                                                        tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="medprobe.models")
    _, out, _ = trained_ldae
    copy = tmp_path / "run"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("volumes*"))
    config = json.loads((copy / "ldae.json").read_text())
    del config["weights_sha256"], config["config_digest"]
    (copy / "ldae.json").write_text(json.dumps(config))
    stage = json.loads((copy / "checkpoints" / "stage2.json").read_text())
    del stage["sha256"]
    (copy / "checkpoints" / "stage2.json").write_text(json.dumps(stage))
    assert load_encoder("ldae", weights=copy).fingerprint == load_encoder("ldae", weights=out).fingerprint
    assert load_stage(copy, 2) is not None
    assert sum("used unverified" in m for m in caplog.messages) == 3  # the export, the stage's model and optimizer
