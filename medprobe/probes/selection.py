"""How a probe's hyper-parameter (the linear probe's C, the k-NN's k) is scored on held-out rows.

Log-loss is the default: it rewards probabilities that say how sure the head is. Accuracy, the usual choice
(DINOv2's), ties over many values on small data, and the tie then decides — often the strongest regularisation,
whose probabilities are all ~0.5.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import balanced_accuracy_score, roc_auc_score

SELECTION_CRITERIA = ("log_loss", "accuracy", "balanced_accuracy", "auroc")
PROBABILITY_FLOOR = 1e-15


def held_out_score(criterion: str, y: np.ndarray, proba: np.ndarray, classes: np.ndarray | None) -> float:
    """The selection score of held-out probabilities (columns in `classes` order); higher is better, NaN where
    undefined (AUROC with one class held out). Regression (`classes` None, `proba` the predicted values): the
    negative mean squared error, whatever the criterion."""
    if classes is None:
        return -float(np.mean((np.asarray(proba, dtype=np.float64) - np.asarray(y, dtype=np.float64)) ** 2))
    if criterion == "log_loss":
        true = proba[np.arange(len(y)), np.searchsorted(classes, y)]
        return float(np.log(np.clip(true, PROBABILITY_FLOOR, 1.0)).mean())
    predicted = classes[proba.argmax(axis=1)]
    if criterion == "accuracy":
        return float(np.mean(predicted == y))
    if criterion == "balanced_accuracy":
        return float(balanced_accuracy_score(y, predicted))
    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    if len(classes) == 2:
        return float(roc_auc_score(y == classes[1], proba[:, 1]))
    if len(present) < len(classes):
        return float("nan")
    return float(roc_auc_score(y, proba, multi_class="ovr", labels=classes))
