"""`check_weights_file`: what a dry run checks of a weights file without unpickling or loading it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from medprobe.errors import WeightsError
from medprobe.models.cards import ModelCard
from medprobe.models.weights import check_weights_file

CARD = ModelCard(name="m", architecture="vit", embed_dim=8, checkpoint_file="m.pth", source="upstream")


def test_a_safetensors_file_is_checked_by_its_header(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_file({"a": np.zeros(512, dtype=np.float32), "b": np.ones(3, dtype=np.float32)}, str(path))
    assert "safetensors header lists 2 tensors" in check_weights_file(path, CARD)
    path.write_bytes(path.read_bytes()[:-100])  # a truncated download
    with pytest.raises(WeightsError, match="not a safetensors file"):
        check_weights_file(path, CARD)


def test_a_file_that_is_neither_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "m.pth"
    path.write_bytes(b"<!DOCTYPE html>" + b" " * 2000)
    with pytest.raises(WeightsError, match="neither a torch checkpoint"):
        check_weights_file(path, CARD)


def test_the_cards_sha256_is_checked_when_it_records_one(tmp_path: Path) -> None:
    path = tmp_path / "m.pth"
    torch.save({"w": torch.zeros(512)}, path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    good = ModelCard(**{**CARD.__dict__, "sha256": digest})
    assert "sha256 matches the card" in check_weights_file(path, good)
    with pytest.raises(WeightsError, match="does not match the card's"):
        check_weights_file(path, ModelCard(**{**CARD.__dict__, "sha256": "0" * 64}))
