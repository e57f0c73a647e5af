"""The base every probe estimator shares: scikit-learn's estimator contract plus its `score` conventions.

One class serves both tasks: the constructor parameter `task` ("classification" or "regression") decides, and the
scikit-learn tags follow it (`__sklearn_tags__`), so `sklearn.base.is_classifier(LinearProbe())` is True and
`is_regressor(LinearProbe(task="regression"))` is True. `predict_proba` exists only on a classification probe
(`hasattr` is False otherwise), as scikit-learn's checks and meta-estimators expect.

Invalid input or hyperparameters raise `ProbeValueError`: a `ProbeError` for the pipeline (which reports it and
goes on) and a `ValueError` for scikit-learn (whose contract asks for one).
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import ClassifierTags, RegressorTags, Tags
from sklearn.utils.metaestimators import available_if

from medprobe.errors import ProbeError

TASKS = ("classification", "regression")


class ProbeValueError(ProbeError, ValueError):
    """Bad data or a bad hyperparameter given to a probe estimator."""


def _is_classification(estimator: Any) -> bool:
    return getattr(estimator, "task", None) == "classification"


#: Decorates `predict_proba`: the method exists only when the probe classifies.
classification_only = available_if(_is_classification)


class ProbeEstimator(BaseEstimator):
    """Subclasses set `task` ("classification" or "regression") in `__init__` and implement `fit`/`predict`."""

    task: str

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        task = getattr(self, "task", None)
        if task == "classification":
            tags.estimator_type = "classifier"
            tags.classifier_tags = ClassifierTags()
        elif task == "regression":
            tags.estimator_type = "regressor"
            tags.regressor_tags = RegressorTags()
        return tags

    def _check_task(self) -> bool:
        """Validate `task`; True for classification."""
        if self.task not in TASKS:
            raise ProbeValueError(f"task must be 'classification' or 'regression', got {self.task!r}")
        return self.task == "classification"

    def predict(self, X: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
        """Accuracy for classification, R² for regression (scikit-learn's conventions)."""
        predicted = self.predict(X)
        if _is_classification(self):
            return float(accuracy_score(y, predicted, sample_weight=sample_weight))
        return float(r2_score(y, predicted, sample_weight=sample_weight))


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """An integer hyperparameter >= `minimum` (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ProbeValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def from_numpy(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing `array`'s memory (C-contiguous). A read-only array (a memory-mapped token store) is shared
    too, not copied: the probes only read from these tensors, so torch's warning about writing to one is moot."""
    array = np.ascontiguousarray(array)
    if array.flags.writeable:
        return torch.from_numpy(array)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable", category=UserWarning)
        return torch.from_numpy(array)
