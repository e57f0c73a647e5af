import numpy as np
import pandas as pd
import pytest

from medprobe.errors import ProbeError
from medprobe.probes import ProtocolResult, evaluate_protocol
from medprobe.probes.registry import default_protocols

PROTOCOLS = default_protocols()


def _data(seed: int, n_subjects: int = 30, rows_each: int = 2, d: int = 6):
    rng = np.random.default_rng(seed)
    y = np.repeat(rng.choice(["neg", "pos"], size=n_subjects), rows_each)
    X = (rng.normal(size=(len(y), d)) + 3.0 * (y == "pos")[:, None]).astype(np.float32)
    subjects = np.repeat([f"h{i:02d}" for i in range(n_subjects)], rows_each)
    return X, y, subjects


FAST = {
    "linear": {"grid": [0.1, 1.0], "folds": 3},
    "knn": {"k": [3, 10], "primary_k": 10, "folds": 3},
    "fewshot": {"shots": [1, 2], "episodes": 5, "folds": 3},
}


def test_default_protocols_are_those_on_pooled_embeddings() -> None:
    assert PROTOCOLS == ("linear", "knn", "fewshot")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_result_shape_for_every_protocol(protocol: str) -> None:
    X, y, subjects = _data(0)
    result = evaluate_protocol(protocol, FAST[protocol], X, y, "classification", subjects, None, seed=3)
    assert isinstance(result, ProtocolResult)
    assert result.params["folds"] == 3
    frame = result.predictions
    assert list(frame.columns) == ["row", "subject_id", "y_true", "y_pred", "proba_neg", "proba_pos"]
    assert len(frame) == result.n_test == len(y)
    np.testing.assert_array_equal(frame["y_true"], y[frame["row"]])
    np.testing.assert_array_equal(frame["subject_id"], subjects[frame["row"]])
    assert all(isinstance(value, float) for value in result.metrics.values())
    assert all(isinstance(value, str | int | float) for value in result.params.values())


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_same_seed_same_result(protocol: str) -> None:
    X, y, subjects = _data(1)
    first = evaluate_protocol(protocol, FAST[protocol], X, y, "classification", subjects, None, seed=7)
    again = evaluate_protocol(protocol, FAST[protocol], X, y, "classification", subjects, None, seed=7)
    assert first.metrics == again.metrics
    pd.testing.assert_frame_equal(first.predictions, again.predictions)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_nan_rows_are_dropped_with_a_note(protocol: str) -> None:
    X, y, subjects = _data(2)
    X[[0, 5, 6]] = np.nan
    X[9, 2] = np.inf
    result = evaluate_protocol(protocol, FAST[protocol], X, y, "classification", subjects, None)
    assert not set(result.predictions["row"]) & {0, 5, 6, 9}
    assert any("dropped 4 rows" in note for note in result.notes)


def test_rows_without_a_label_are_dropped() -> None:
    X, y, subjects = _data(3)
    y = y.astype(object)
    y[[1, 2]] = None
    result = evaluate_protocol("knn", FAST["knn"], X, y, "classification", subjects, None)
    assert result.n_test == len(y) - 2
    assert any("without a label" in note for note in result.notes)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_single_training_class_is_refused(protocol: str) -> None:
    X, _, subjects = _data(4)
    y = np.array(["neg"] * len(X))
    y[-2:] = "pos"  # the only other class sits in the test rows
    split = np.array(["train"] * (len(X) - 4) + ["test"] * 4)
    with pytest.raises(ProbeError, match="single class"):
        evaluate_protocol(protocol, FAST[protocol], X, y, "classification", subjects, split)


def test_single_class_overall_is_refused_in_cross_validation() -> None:
    X, _, subjects = _data(5)
    with pytest.raises(ProbeError, match="at least two classes"):
        evaluate_protocol("knn", {}, X, np.zeros(len(X), int), "classification", subjects, None)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_class_with_one_sample_does_not_crash(protocol: str) -> None:
    X, y, subjects = _data(6)
    y = y.astype(object)
    y[0] = "rare"  # one row, one subject
    subjects = subjects.copy()
    subjects[0] = "only-rare"
    result = evaluate_protocol(protocol, FAST[protocol], X, y, "classification", subjects, None)
    assert "accuracy" in result.metrics
    assert 0 not in set(result.predictions["row"])
    assert any("'rare'" in note for note in result.notes)


def test_class_with_one_training_sample_in_an_explicit_split() -> None:
    X, y, subjects = _data(7)
    y = y.astype(object)
    y[0] = "rare"
    split = np.where(np.arange(len(X)) < 40, "train", "test")
    for protocol in ("linear", "knn"):
        result = evaluate_protocol(protocol, FAST[protocol], X, y, "classification", subjects, split)
        assert "proba_rare" in result.predictions.columns
        assert "auroc" in result.metrics


def test_test_class_unseen_in_training_is_noted() -> None:
    X, y, subjects = _data(8)
    y = y.astype(object)
    y[-2:] = "new"
    split = np.where(np.arange(len(X)) < 40, "train", "test")
    result = evaluate_protocol("knn", FAST["knn"], X, y, "classification", subjects, split)
    assert any("no training rows" in note for note in result.notes)
    assert "proba_new" not in result.predictions.columns


def test_fewer_samples_than_k_is_clipped() -> None:
    X, y, subjects = _data(9, n_subjects=6)
    result = evaluate_protocol("knn", {}, X, y, "classification", subjects, None)
    assert result.params["k"] <= result.n_train
    assert any("primary_k 20" in note for note in result.notes)


def test_unknown_protocol_and_unknown_option_are_refused() -> None:
    X, y, subjects = _data(10)
    with pytest.raises(ProbeError, match="unknown protocol"):
        evaluate_protocol("svm", {}, X, y, "classification", subjects, None)
    with pytest.raises(ProbeError, match="'kk'"):
        evaluate_protocol("knn", {"kk": [1]}, X, y, "classification", subjects, None)
    with pytest.raises(ProbeError, match="folds"):
        evaluate_protocol("knn", {"folds": 1}, X, y, "classification", subjects, None)


def test_mismatched_lengths_are_refused() -> None:
    X, y, subjects = _data(11)
    with pytest.raises(ProbeError, match="subject_ids"):
        evaluate_protocol("knn", {}, X, y, "classification", subjects[:-1], None)


def test_regression_targets_must_be_numbers() -> None:
    X, y, subjects = _data(12)
    with pytest.raises(ProbeError, match="numbers"):
        evaluate_protocol("linear", {}, X, y, "regression", subjects, None)
