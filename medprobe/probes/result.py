"""What a protocol returns, and the shared steps that turn pooled test predictions into it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medprobe.metrics import scored_metrics
from medprobe.probes.inputs import ProbeInputs
from medprobe.probes.options import ProtocolOptions
from medprobe.probes.splits import Fold


@dataclass
class ProtocolResult:
    """One protocol's outcome on one table of embeddings.

    `metrics` uses flat names ("accuracy", "k10/accuracy", "shots4/accuracy_mean"). `predictions` has one row
    per evaluated test sample: `row` (index into the caller's X), `subject_id`, `y_true`, `y_pred` and, for
    classification, one `proba_<class>` column per trained class. In cross-validation every row is tested once
    (out of fold), `n_test` counts them and `n_train` is the mean size of the fitting folds.
    """

    metrics: dict[str, float]
    predictions: pd.DataFrame
    params: dict[str, str | float | int]
    n_train: int
    n_test: int
    notes: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)  # `medprobe.evaluation.plausibility` flags, as the notes say

    @property
    def n_test_subjects(self) -> int | None:
        """The distinct subjects among the test predictions; None when the protocol keeps no per-sample
        predictions (few-shot scores episodes)."""
        if "subject_id" not in self.predictions.columns:
            return None
        return int(self.predictions["subject_id"].nunique())


def tested_rows(folds: list[Fold]) -> np.ndarray:
    """All test rows of all folds, in input order (folds never share a test row)."""
    return np.sort(np.concatenate([fold.test for fold in folds]))


def fit_size(folds: list[Fold]) -> int:
    return round(float(np.mean([len(fold.fit_rows) for fold in folds])))


def score(
    inputs: ProbeInputs,
    test: np.ndarray,
    outputs: np.ndarray,
    classes: np.ndarray | None,
    options: ProtocolOptions,
    seed: int = 0,
    intervals: bool = True,
) -> tuple[dict[str, float], list[str]]:
    """Metrics for the pooled `outputs` (probabilities, or predictions for regression) on rows `test`, with
    `options.bootstrap` subject-bootstrap resamples for `<name>_ci_low/high` unless `intervals` is False."""
    resamples = options.bootstrap if intervals else 0
    return scored_metrics(
        inputs.y[test],
        outputs,
        inputs.subjects[test],
        classes if inputs.task_type == "classification" else None,
        n_resamples=resamples,
        seed=seed,
        ordinal=options.ordinal,
    )


def predictions_frame(
    inputs: ProbeInputs, test: np.ndarray, outputs: np.ndarray, classes: np.ndarray | None
) -> pd.DataFrame:
    """The per-sample table; `outputs` as for `score`."""
    frame = pd.DataFrame({"row": inputs.rows[test], "subject_id": inputs.subjects[test], "y_true": inputs.y[test]})
    if inputs.task_type == "regression":
        frame["y_pred"] = outputs
        return frame
    assert classes is not None, "classification predictions need the trained classes (None only for regression)"
    frame["y_pred"] = classes[outputs.argmax(axis=1)]
    for column, label in enumerate(classes.tolist()):
        frame[f"proba_{label}"] = outputs[:, column]
    return frame


def align_proba(proba: np.ndarray, fitted: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Put a fold model's columns (its `fitted` classes) in the order of all `classes`; missing ones get 0."""
    aligned = np.zeros((proba.shape[0], len(classes)))
    aligned[:, np.searchsorted(classes, fitted)] = proba
    return aligned
