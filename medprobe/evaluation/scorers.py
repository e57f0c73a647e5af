"""A protocol's per-sample predictions as a weighted scorer, so analyses that reweight or subset the test rows
(paired comparisons, subgroups) score them with the same vectorised metrics as the protocol did."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from medprobe.metrics.bootstrap import Scorer
from medprobe.metrics.classification import classification_scores, encode_labels
from medprobe.metrics.weighted import regression_scores

PROBA_PREFIX = "proba_"


@dataclass(frozen=True)
class ScoredPredictions:
    """The rows of a predictions frame (`medprobe.probes.result.predictions_frame`) ready to score: class codes and
    probabilities (columns named by class, as text) or regression targets and predictions."""

    task_type: str
    subjects: np.ndarray
    y_true: np.ndarray  # class codes (len(classes) for an unseen class), or float targets
    outputs: np.ndarray  # (n, C) probabilities, or (n,) predictions
    classes: tuple[str, ...] = ()

    @classmethod
    def of(cls, predictions: pd.DataFrame, task_type: str) -> ScoredPredictions:
        subjects = predictions["subject_id"].astype(str).to_numpy()
        if task_type == "regression":
            return cls(task_type, subjects, predictions["y_true"].to_numpy(np.float64),
                       predictions["y_pred"].to_numpy(np.float64))
        columns = [c for c in predictions.columns if c.startswith(PROBA_PREFIX)]
        classes = tuple(c[len(PROBA_PREFIX):] for c in columns)
        codes = encode_labels(predictions["y_true"].astype(str).to_numpy(), np.array(classes, dtype=object))
        return cls(task_type, subjects, codes, predictions[columns].to_numpy(np.float64), classes)

    def __len__(self) -> int:
        return len(self.y_true)

    def take(self, rows: np.ndarray) -> ScoredPredictions:
        return ScoredPredictions(self.task_type, self.subjects[rows], self.y_true[rows], self.outputs[rows],
                                 self.classes)

    def scores(self, W: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric but the ECE (none of the analyses reports it) for each column of weights `W` (n, B)."""
        if self.task_type == "regression":
            return regression_scores(W, self.y_true, self.outputs)
        return classification_scores(self.y_true, self.outputs, len(self.classes), W,
                                     class_names=list(self.classes), calibration=False)

    def scorer(self, metrics: tuple[str, ...]) -> Scorer:
        """`scores` restricted to `metrics`."""
        def score(W: np.ndarray) -> dict[str, np.ndarray]:
            return {name: value for name, value in self.scores(W).items() if name in metrics}
        return score

    def point(self, metrics: tuple[str, ...]) -> dict[str, float]:
        """The metrics on all rows (NaN where undefined)."""
        values = self.scorer(metrics)(np.ones((len(self), 1)))
        return {name: float(values[name][0]) if name in values else np.nan for name in metrics}
