"""The cross-fitting loop that the fold-based protocols (linear, k-NN, attentive) share.

Each fold's model is fitted on the fold's fit rows and predicts its test rows; the out-of-fold outputs are pooled
(class probabilities aligned to the classes of the whole training data, so a fold that lacked a class gives it
probability 0) and scored once, with subject-bootstrap intervals. A protocol supplies only how to fit and predict
one fold and the parameters it reports; with a train/val/test split there is one fold, so the same loop gives the
split's test metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence

import numpy as np

from medprobe.probes.inputs import ProbeInputs
from medprobe.probes.options import ProtocolOptions
from medprobe.probes.result import ProtocolResult, align_proba, fit_size, predictions_frame, score, tested_rows
from medprobe.probes.splits import Fold

#: Fits one fold (its number, its rows) and returns its test rows' outputs per variant (one variant for most
#: protocols, one per k for k-NN), with the classes of the probability columns (None for regression).
FitPredict = Callable[[int, Fold], tuple[Mapping[Hashable, np.ndarray], np.ndarray | None]]


def cross_fit(inputs: ProbeInputs, folds: list[Fold], classes: np.ndarray | None, fit_predict: FitPredict,
              variants: Sequence[Hashable] = (None,)) -> dict[Hashable, np.ndarray]:
    """Pooled out-of-fold outputs per variant, one row per input row (rows no fold tests stay 0)."""
    if inputs.task_type == "classification":
        assert classes is not None, "evaluate passes the training classes for every classification run"
        shape: tuple[int, ...] = (len(inputs.y), len(classes))
    else:
        shape = (len(inputs.y),)
    pooled = {variant: np.zeros(shape) for variant in variants}
    for number, fold in enumerate(folds):
        outputs, fitted = fit_predict(number, fold)
        for variant in variants:
            fold_outputs = outputs[variant]
            if classes is not None:  # classification
                assert fitted is not None, "a classifier reports the classes of its probability columns"
                fold_outputs = align_proba(fold_outputs, fitted, classes)
            pooled[variant][fold.test] = fold_outputs
    return pooled


def pooled_result(inputs: ProbeInputs, folds: list[Fold], outputs: np.ndarray, classes: np.ndarray | None,
                  options: ProtocolOptions, seed: int, params: dict[str, str | float | int],
                  notes: list[str]) -> ProtocolResult:
    """The protocol's result from its pooled `outputs`: metrics with intervals, the predictions frame, the fold
    count (cross-validation) and the notes, the scoring's last."""
    test = tested_rows(folds)
    metrics, metric_notes = score(inputs, test, outputs[test], classes, options, seed)
    if inputs.split is None:
        params = {**params, "folds": len(folds)}
    return ProtocolResult(
        metrics=metrics,
        predictions=predictions_frame(inputs, test, outputs[test], classes),
        params=params,
        n_train=fit_size(folds),
        n_test=len(test),
        notes=notes + metric_notes,
    )
