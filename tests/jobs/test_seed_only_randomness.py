"""Randomness comes from the seed and the order of appearance, never from the salt or hash order: the CKA
subsample past `CKA_SAMPLES` and the LDAE hold-out are the same in two fresh workdirs (two salts)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from medprobe.embed.pseudonyms import pseudonym
from medprobe.jobs import diagnostics_step as step
from medprobe.models.ldae.data import _split_rows
from medprobe.pipeline_spec import load_spec


@dataclass
class _Embedded:
    """The part of an `EmbedResult` the diagnostics step reads."""

    frame: pd.DataFrame
    X: np.ndarray

    def __len__(self) -> int:
        return len(self.X)

    def embeddings(self) -> np.ndarray:
        return self.X


@dataclass
class _Space:
    model: str


class _Runs:
    def __init__(self) -> None:
        self.metrics: dict[str, float] = {}

    def start_run(self, kind: str, name: str, tags: dict[str, str]) -> str:
        return name

    def log(self, run: str, metrics: dict[str, float]) -> None:
        self.metrics |= metrics

    def log_file(self, run: str, path: Path, folder: str) -> None:
        return None

    def finish(self, run: str) -> None:
        return None


@dataclass
class _Recorder:
    runs: _Runs


def _diagnostics(spec_path: Path, salt: bytes, n: int) -> tuple[dict[str, float], str]:
    """The diagnostics step on two models' tables of `n` samples whose ids are salted with `salt`."""
    rng = np.random.default_rng(7)
    first = rng.normal(size=(n, 6)).astype(np.float32)
    second = np.tanh(first @ rng.normal(size=(6, 4))) + rng.normal(scale=0.5, size=(n, 4))  # alike, not equal
    frame = pd.DataFrame({"sample_id": [pseudonym(salt, "smp", f"vol{i:05d}.nii.gz") for i in range(n)],
                          "label": np.arange(n) % 2})
    spec = load_spec(spec_path)
    recorder = _Recorder(_Runs())
    tables: Any = [(_Space("first"), _Embedded(frame, first)), (_Space("second"), _Embedded(frame, second))]
    step.diagnostics_step(spec.context, spec.tasks, None, tables, recorder, say=lambda _: None)  # type: ignore[arg-type]
    return recorder.runs.metrics, (spec.paths.diagnostics / "cka.csv").read_text()


def test_two_fresh_workdirs_give_identical_diagnostics_past_5000_samples(
        volume_dataset, write_spec, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(step, "projection_figure", lambda *args, **kwargs: None)
    manifest = volume_dataset(n=4)
    n = step.CKA_SAMPLES + 200
    one = _diagnostics(write_spec(manifest, "one.yaml", workdir=str(tmp_path / "one")), b"a" * 64, n)
    two = _diagnostics(write_spec(manifest, "two.yaml", workdir=str(tmp_path / "two")), b"b" * 64, n)
    assert "cka/first/second" in one[0]
    assert one == two  # the same numbers, to the last bit, and the same cka.csv
    reseeded = _diagnostics(write_spec(manifest, "three.yaml", workdir=str(tmp_path / "three"), seed=1),
                            b"a" * 64, n)
    assert reseeded[0]["cka/first/second"] != one[0]["cka/first/second"]  # the seed draws the subsample
    monkeypatch.setattr(step, "CKA_SAMPLES", n)
    whole = _diagnostics(write_spec(manifest, "whole.yaml", workdir=str(tmp_path / "whole")), b"a" * 64, n)
    assert whole[0]["cka/first/second"] != one[0]["cka/first/second"]  # it was a subsample


def test_the_ldae_holdout_depends_on_the_seed_and_order_not_on_the_identifiers() -> None:
    subjects = [f"S{i:03d}" for i in range(20) for _ in range(2)]
    table = pd.DataFrame({"subject_id": subjects})
    renamed = pd.DataFrame({"subject_id": [pseudonym(b"x" * 64, "sub", s) for s in subjects]})  # another salt
    readable = list(range(len(table)))
    held = _split_rows(table, readable, holdout=6, seed=0)
    assert _split_rows(renamed, readable, holdout=6, seed=0) == held
    assert len(held[1]) == 6 and not set(held[0]) & set(held[1])
    assert _split_rows(table, readable, holdout=6, seed=1) != held
