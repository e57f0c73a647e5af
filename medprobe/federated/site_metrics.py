"""A site's evaluation of a global head on its test rows: a flat dict of numbers (the catalogue's metrics of the task
type, `medprobe.metrics.catalogue`), with `num-examples`.

Only these aggregates leave the site; which metrics are undefined on a site (AUROC with one class present) is
visible from their absence.
"""

from __future__ import annotations

import numpy as np

from medprobe.federated.records import NUM_EXAMPLES
from medprobe.metrics import classification_metrics, regression_metrics
from medprobe.metrics.catalogue import METRICS


def score_site(protocol: str, y_true: np.ndarray, predicted: np.ndarray, classes: list[str] | None = None
               ) -> dict[str, float]:
    """Probabilities (n, C) in the order of `classes` for classifiers; predictions (n,) for ridge."""
    if protocol == "ridge":
        values, _ = regression_metrics(y_true, predicted)
        keep = METRICS["regression"]
    else:
        values, _ = classification_metrics(y_true, predicted, np.asarray(classes))
        keep = METRICS["classification"]
    return {NUM_EXAMPLES: len(y_true), **{k: float(values[k]) for k in keep if k in values}}
