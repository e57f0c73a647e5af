"""Scoring another site's head: which rows, what the metrics are, and label maps that do not agree."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from medprobe.errors import ProbeError
from medprobe.probes import evaluate_protocol
from medprobe.probes.inputs import prepare_inputs
from medprobe.probes.options import LinearOptions, ProtocolOptions
from medprobe.transfer import FeatureSpace, ProbeHead, evaluate_head, fit_head

SPACE = FeatureSpace("m", "handcrafted", "handcrafted-0123456789abcdef", "random-init", "fedcba9876543210", 5)
CENTRES = np.random.default_rng(42).normal(size=(3, 5)) * 2.0


def _rows(labels: np.ndarray, seed: int, split: bool = False):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(len(labels), 5)) + CENTRES[labels]).astype(np.float32)
    subjects = np.array([f"s{i // 2}" for i in range(len(labels))])
    splits = np.where(np.arange(len(labels)) // 2 % 3 == 0, "test", "train") if split else None
    return X, subjects, splits


def _head(labels: np.ndarray, site: str = "site-a") -> ProbeHead:
    X, subjects, _ = _rows(labels, seed=0)
    result = evaluate_protocol("linear", {"bootstrap": 0, "folds": 3}, X, labels, "classification", subjects)
    inputs, _ = prepare_inputs(X, labels, subjects, None, "classification")
    return fit_head(inputs, result, LinearOptions(), 0, SPACE, site, "lesion", "label")


def test_a_head_scores_the_test_split_with_intervals() -> None:
    labels = np.tile([0, 1], 30)
    head = _head(labels)
    X, subjects, split = _rows(labels, seed=1, split=True)
    inputs, _ = prepare_inputs(X, labels, subjects, split, "classification")
    result = evaluate_head(head, inputs, SPACE, ProtocolOptions(bootstrap=200), seed=0)
    assert result.n_test == int((split == "test").sum()) and result.params["rows"] == "test split"
    assert result.metrics["auroc"] > 0.9 and "auroc_ci_low" in result.metrics
    assert result.params["train_site"] == "site-a" and result.notes == []
    assert set(result.predictions["row"]) == set(np.flatnonzero(split == "test"))
    without_split, _ = prepare_inputs(X, labels, subjects, None, "classification")
    assert evaluate_head(head, without_split, SPACE, ProtocolOptions(bootstrap=0)).n_test == len(labels)


def test_a_class_the_head_never_learnt_is_a_note_not_a_crash() -> None:
    head = _head(np.tile([0, 1], 30))
    local = np.tile([0, 1, 2], 20)
    X, subjects, _ = _rows(local, seed=2)
    inputs, _ = prepare_inputs(X, local, subjects, None, "classification")
    result = evaluate_head(head, inputs, SPACE, ProtocolOptions(bootstrap=50))
    assert any("class(es) [2]" in note and "count as errors" in note for note in result.notes)
    assert result.metrics["accuracy"] <= 2 / 3 + 1e-9 and "auroc" in result.metrics


def test_a_class_the_rows_lack_is_a_note_and_the_rest_is_scored() -> None:
    head = _head(np.tile([0, 1, 2], 20))
    local = np.tile([0, 1], 30)
    X, subjects, _ = _rows(local, seed=3)
    inputs, _ = prepare_inputs(X, local, subjects, None, "classification")
    result = evaluate_head(head, inputs, SPACE, ProtocolOptions(bootstrap=50))
    assert any("knows class(es) [2]" in note for note in result.notes)
    assert result.metrics["auroc"] > 0.8 and list(result.predictions.columns[-3:]) == ["proba_0", "proba_1",
                                                                                        "proba_2"]


def test_text_labels_that_share_nothing_still_give_metrics() -> None:
    head = dataclasses.replace(_head(np.tile([0, 1], 30)), classes=["benign", "malignant"])
    local = np.array(["absent", "present"] * 10, dtype=object)
    X, subjects, _ = _rows(np.tile([0, 1], 10), seed=4)
    inputs, _ = prepare_inputs(X, local, subjects, None, "classification")
    result = evaluate_head(head, inputs, SPACE, ProtocolOptions(bootstrap=20))
    assert result.metrics["accuracy"] == 0.0
    assert any("'absent'" in note for note in result.notes) and any("'benign'" in note for note in result.notes)


def test_other_preprocessing_is_noted_and_another_width_refused() -> None:
    head = _head(np.tile([0, 1], 30))
    X, subjects, _ = _rows(np.tile([0, 1], 10), seed=5)
    inputs, _ = prepare_inputs(X, np.tile([0, 1], 10), subjects, None, "classification")
    elsewhere = dataclasses.replace(SPACE, preprocessing="0000000000000000")
    notes = evaluate_head(head, inputs, elsewhere, ProtocolOptions(bootstrap=0)).notes
    assert any("preprocessed" in note for note in notes)
    narrow, _ = prepare_inputs(X[:, :4], np.tile([0, 1], 10), subjects, None, "classification")
    with pytest.raises(ProbeError, match="takes 5 features"):
        evaluate_head(head, narrow, SPACE, ProtocolOptions(bootstrap=0))
