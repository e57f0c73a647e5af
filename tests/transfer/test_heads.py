"""A published head is the linear probe itself: export → load → the same predictions, and nothing else inside."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from medprobe.probes import LinearProbe, evaluate_protocol
from medprobe.probes.inputs import prepare_inputs
from medprobe.probes.options import LinearOptions
from medprobe.transfer import FeatureSpace, HeadError, fit_head, read_head, write_head
from medprobe.transfer.rows import fit_rows

SPACE = FeatureSpace("handcrafted", "handcrafted", "handcrafted-0123456789abcdef", "random-init", "fedcba9876543210", 6)


def _table(task_type: str, n_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = 90
    subjects = np.array([f"sub{i // 2:03d}" for i in range(n)])
    if task_type == "regression":
        X = rng.normal(size=(n, 6)) * np.array([1, 10, 0.1, 1, 3, 1])
        y = X @ rng.normal(size=6) + 50 + rng.normal(scale=0.3, size=n)
    else:
        y = rng.integers(0, n_classes, size=n)
        X = rng.normal(size=(n, 6)) + rng.normal(size=(n_classes, 6))[y] * 1.5
        X[:, 2] *= 40.0
    split = np.where(np.arange(n) // 2 % 4 == 0, "test", "train")
    return X.astype(np.float32), y, subjects, split


@pytest.mark.parametrize(("task_type", "n_classes"), [("classification", 2), ("classification", 3), ("regression", 0)])
def test_exported_head_predicts_like_the_probe(tmp_path: Path, task_type: str, n_classes: int) -> None:
    X, y, subjects, split = _table(task_type, n_classes)
    result = evaluate_protocol("linear", {"bootstrap": 0}, X, y, task_type, subjects, split)
    inputs, _ = prepare_inputs(X, y, subjects, split, task_type)
    head = fit_head(inputs, result, LinearOptions(), 0, SPACE, "site-a", "t", "label")
    files = write_head(head, tmp_path / "probe_head")
    assert sorted(p.name for p in files) == ["head.json", "head.safetensors"]
    loaded = read_head(tmp_path / "probe_head")

    rows = fit_rows(inputs)
    assert len(rows) == int((split != "test").sum()) == loaded.n_train
    chosen = float(result.params["C" if task_type == "classification" else "alpha"])
    probe = LinearProbe(task=task_type, grid=[chosen]).fit(inputs.X[rows], inputs.y[rows], groups=inputs.subjects[rows])
    expected = probe.predict(X) if task_type == "regression" else probe.predict_proba(X)
    np.testing.assert_allclose(loaded.outputs(X), expected, atol=1e-5, rtol=0)
    assert loaded.classes == ([] if task_type == "regression" else list(range(n_classes)))
    assert (loaded.fingerprint, loaded.preprocessing, loaded.embed_dim) == (SPACE.fingerprint, SPACE.preprocessing, 6)

    # With a split the head is the model the protocol tested (up to the solver's tolerance: another warm start).
    tested = result.predictions.sort_values("row")
    test_rows = tested["row"].to_numpy()
    if task_type == "regression":
        np.testing.assert_allclose(loaded.outputs(X[test_rows]), tested["y_pred"], rtol=1e-6)
    else:
        proba = tested[[f"proba_{c}" for c in range(n_classes)]].to_numpy()
        np.testing.assert_allclose(loaded.outputs(X[test_rows]), proba, atol=2e-3)


def test_head_files_hold_aggregates_only(tmp_path: Path) -> None:
    X, y, subjects, split = _table("regression", 0)
    result = evaluate_protocol("linear", {"bootstrap": 0}, X, y, "regression", subjects, split)
    inputs, _ = prepare_inputs(X, y, subjects, split, "regression")
    write_head(fit_head(inputs, result, LinearOptions(), 0, SPACE, "site-a", "age", "age"), tmp_path)
    metadata = json.loads((tmp_path / "head.json").read_text())
    assert set(metadata) == {
        "format", "embed_dim", "task_type", "classes", "site", "model", "task", "target", "fingerprint",
        "preprocessing", "regularisation", "n_train", "target_mean", "target_std", "medprobe_version", "sha256"}
    assert {k: v.shape for k, v in load_file(str(tmp_path / "head.safetensors")).items()} == {
        "mean": (6,), "scale": (6,), "weight": (1, 6), "bias": (1,)}
    text = (tmp_path / "head.json").read_text() + (tmp_path / "head.safetensors").read_bytes().decode("latin-1")
    assert "sub0" not in text


def test_a_malformed_head_is_refused(tmp_path: Path) -> None:
    X, y, subjects, split = _table("classification", 3)
    result = evaluate_protocol("linear", {"bootstrap": 0}, X, y, "classification", subjects, split)
    inputs, _ = prepare_inputs(X, y, subjects, split, "classification")
    write_head(fit_head(inputs, result, LinearOptions(), 0, SPACE, "site-a", "t", "label"), tmp_path)
    tensors = load_file(str(tmp_path / "head.safetensors"))
    save_file({**tensors, "weight": tensors["weight"][:2]}, str(tmp_path / "head.safetensors"))
    with pytest.raises(HeadError, match="does not match the digest"):
        read_head(tmp_path)
    metadata = json.loads((tmp_path / "head.json").read_text())
    del metadata["sha256"]  # a head from before digests: its tensors are still checked
    (tmp_path / "head.json").write_text(json.dumps(metadata))
    with pytest.raises(HeadError, match="'weight' has shape"):
        read_head(tmp_path)
    (tmp_path / "head.json").write_text("{not json")
    with pytest.raises(HeadError, match="unreadable"):
        read_head(tmp_path)
