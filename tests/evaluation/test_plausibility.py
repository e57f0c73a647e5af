"""Plausibility flags: each check fires on the case it names and stays quiet on an ordinary result; the counts in
its note are checked against a direct loop."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from medprobe.api import evaluate
from medprobe.evaluation.plausibility import (
    BELOW_CHANCE,
    CONSTANT,
    GAP_OUTSIDE,
    OUTSIDE_RANGE,
    SPREADS,
    WIDE_INTERVAL,
    LabelScale,
    flags_text,
    gap_finding,
    result_findings,
)


def _flags(metrics: dict, predictions: pd.DataFrame, task_type: str, scale: LabelScale | None = None) -> list[str]:
    return [finding.flag for finding in result_findings(metrics, predictions, task_type, scale)]


def test_one_class_for_every_sample_is_constant_and_two_classes_are_not() -> None:
    same = pd.DataFrame({"y_pred": [1] * 6, "proba_0": [0.0] * 6, "proba_1": [1.0] * 6})
    findings = result_findings({}, same, "classification", None)
    assert [f.flag for f in findings] == [CONSTANT]
    assert "6 test samples" in findings[0].note and "class 1" in findings[0].note and "1.000" in findings[0].note
    assert _flags({}, same.assign(y_pred=[0, 1, 1, 1, 1, 1]), "classification") == []


def test_regression_predictions_beyond_four_spreads_of_the_training_labels_are_counted() -> None:
    rng = np.random.default_rng(0)
    training = rng.normal(50, 10, size=200)
    scale = LabelScale.of(training)
    assert scale is not None and scale.mean == pytest.approx(training.mean())
    predicted = np.array([40.0, 55.0, 111.0, 237.0, 60.0, -20.0])
    low, high = training.mean() - SPREADS * training.std(), training.mean() + SPREADS * training.std()
    expected = sum(1 for value in predicted if value < low or value > high)  # the direct loop
    findings = result_findings({}, pd.DataFrame({"y_pred": predicted}), "regression", scale)
    assert [f.flag for f in findings] == [OUTSIDE_RANGE]
    assert findings[0].note.startswith(f"{expected} of 6 predictions")
    assert _flags({}, pd.DataFrame({"y_pred": [45.0, 52.0, 61.0]}), "regression", scale) == []
    assert _flags({}, pd.DataFrame({"y_pred": [52.0] * 5}), "regression", scale) == [CONSTANT]


def test_auroc_below_chance_only_when_its_whole_interval_is_below_half() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    inverted = roc_auc_score(labels, [0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    assert inverted == 0.0
    below = {"auroc": inverted, "auroc_ci_low": 0.0, "auroc_ci_high": 0.3}
    assert _flags(below, pd.DataFrame(), "classification") == [BELOW_CHANCE]
    assert _flags({**below, "auroc_ci_high": 0.55}, pd.DataFrame(), "classification") == []


def test_an_interval_as_wide_as_the_metric_can_range_is_flagged() -> None:
    assert _flags({"auroc": 0.5, "auroc_ci_low": 0.0, "auroc_ci_high": 1.0}, pd.DataFrame(), "classification") == [
        WIDE_INTERVAL]
    assert _flags({"kappa": 0.1, "kappa_ci_low": -0.9, "kappa_ci_high": 0.95}, pd.DataFrame(), "classification") == []
    scale = LabelScale(50.0, 2.0)  # plausible range 8 SD = 16 years wide
    assert _flags({"mae": 10.0, "mae_ci_low": 1.0, "mae_ci_high": 18.0}, pd.DataFrame(), "regression", scale) == [
        WIDE_INTERVAL]
    assert _flags({"mae": 10.0, "mae_ci_low": 6.0, "mae_ci_high": 14.0}, pd.DataFrame(), "regression", scale) == []


def test_r2_gaps_outside_unit_range_and_the_tag_order() -> None:
    finding = gap_finding("r2", 223.5)
    assert finding is not None and finding.flag == GAP_OUTSIDE
    assert gap_finding("r2", 0.4) is None and gap_finding("mae", 40.0) is None and gap_finding("r2", np.nan) is None
    findings = [*result_findings({"auroc": 0.1, "auroc_ci_low": 0.0, "auroc_ci_high": 0.2},
                                 pd.DataFrame({"y_pred": [0, 0, 0]}), "classification", None)]
    assert flags_text(findings) == f"{CONSTANT}; {BELOW_CHANCE}"


def test_an_evaluation_on_identical_embeddings_flags_its_constant_predictions() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"subject_id": [f"s{i}" for i in range(40)], "age": rng.normal(60, 8, size=40),
                          "split": ["train"] * 30 + ["test"] * 10})
    result = evaluate(frame, "age", task_type="regression", protocols=["linear"], embeddings=np.ones((40, 8)))
    assert CONSTANT in result.results["linear"].flags
    assert any("the head ignores its input" in note for note in result.notes("linear"))
    informative = evaluate(frame, "age", task_type="regression", protocols=["linear"],
                           embeddings=np.c_[frame["age"].to_numpy(), rng.normal(size=(40, 3))])
    assert informative.results["linear"].flags == []
