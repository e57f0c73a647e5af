"""Classification metrics from class probabilities, for one set of predictions or many weightings of it.

Definitions (all names flat and stable; `k10/...` style prefixes are added by the protocols):
- `accuracy`, `balanced_accuracy` (mean recall over the classes present in the test labels), `f1_macro` (over the
  classes present in the labels or the predictions; scikit-learn's `f1_score(average="macro")`), `kappa` (Cohen's;
  quadratic weights on the sorted class order when `ordinal=True`, then named `kappa_quadratic`): from the most
  probable class.
- `auroc` and `auprc` (average precision): binary uses the positive class `classes[1]`; otherwise the macro average
  of one-vs-rest values over the classes with both positives and negatives in the test set. `auroc/class_<c>` per
  class (multiclass only).
- `sensitivity`, `specificity`: binary at `proba[:, 1] >= threshold` (default 0.5); multiclass the macro one-vs-rest
  values of the most-probable-class predictions.
- `ece`: expected calibration error of the top-class confidence, 15 equal-width bins.
Test labels that are not among `classes` (a class never seen in training) count as errors.
"""

from __future__ import annotations

import numpy as np

from medprobe.metrics import weighted

THRESHOLD = 0.5


def encode_labels(y_true: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Column index of each label in `classes`; `len(classes)` for a label not among them."""
    index = {label: code for code, label in enumerate(np.asarray(classes).tolist())}
    return np.array([index.get(label, len(classes)) for label in np.asarray(y_true).tolist()], dtype=np.int64)


def classification_scores(
    codes: np.ndarray,
    proba: np.ndarray,
    n_classes: int,
    W: np.ndarray,
    ordinal: bool = False,
    threshold: float = THRESHOLD,
    class_names: list[str] | None = None,
    calibration: bool = True,
) -> dict[str, np.ndarray]:
    """Every metric for each column of weights `W` (n, B); `codes` from `encode_labels`. Values are (B,) arrays.
    `calibration=False` leaves out the ECE, the costliest of them, for callers that do not report it."""
    C, B = n_classes, W.shape[1]
    names = class_names or [str(c) for c in range(C)]
    predicted = proba.argmax(axis=1)
    cm = weighted.group_sums(W, codes * C + predicted, (C + 1) * C).reshape(-1, C + 1, C)
    total = cm.sum(axis=(1, 2))
    tp = np.concatenate([np.diagonal(cm, axis1=1, axis2=2), np.zeros((B, 1))], axis=1)  # (B, C+1)
    support = cm.sum(axis=2)
    predicted_count = np.concatenate([cm.sum(axis=1), np.zeros((B, 1))], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(support > 0, tp / support, np.nan)
        present = support + predicted_count > 0
        f1 = np.where(present, 2 * tp / (support + predicted_count), np.nan)
        out = {
            "accuracy": tp.sum(axis=1) / total,
            "balanced_accuracy": _nanmean(recall),
            "f1_macro": _nanmean(f1),
        }
        square = np.concatenate([cm, np.zeros((B, C + 1, 1))], axis=2)
        if not ordinal:
            out["kappa"] = weighted.kappa(square, quadratic=False)
        elif not support[:, C].any():
            out["kappa_quadratic"] = weighted.kappa(square[:, :C, :C], quadratic=True)
        if C == 2:
            seen = codes < C
            positive_pred = (proba[:, 1] >= threshold).astype(np.int64)
            pairs = np.where(seen, codes, 0) * 2 + positive_pred
            cm2 = weighted.group_sums(W * seen[:, None], pairs, 4).reshape(-1, 2, 2)
            out["sensitivity"] = _ratio(cm2[:, 1, 1], cm2[:, 1].sum(axis=1))
            out["specificity"] = _ratio(cm2[:, 0, 0], cm2[:, 0].sum(axis=1))
        else:
            negatives = total[:, None] - support[:, :C]
            true_negatives = negatives - (predicted_count[:, :C] - tp[:, :C])
            out["sensitivity"] = _nanmean(recall[:, :C])
            out["specificity"] = _nanmean(np.where(negatives > 0, true_negatives / negatives, np.nan))
        if calibration:
            out["ece"] = weighted.expected_calibration_error(W, proba.max(axis=1),
                                                             (predicted == codes).astype(np.float64))

    if C == 2:
        positive = codes == 1
        out["auroc"], out["auprc"] = weighted.rank_scores(W, positive, proba[:, 1])
    elif C > 2:
        aurocs, aps = [], []
        for column in range(C):
            positive = codes == column
            if not positive.any() or positive.all():
                continue
            auc, ap = weighted.rank_scores(W, positive, proba[:, column])
            aurocs.append(auc)
            aps.append(ap)
            out[f"auroc/class_{names[column]}"] = aurocs[-1]
        if aurocs:
            out["auroc"] = _nanmean(np.stack(aurocs, axis=1))
            out["auprc"] = _nanmean(np.stack(aps, axis=1))
    return out


def classification_metrics(
    y_true: np.ndarray,
    proba: np.ndarray,
    classes: np.ndarray,
    ordinal: bool = False,
    threshold: float = THRESHOLD,
) -> tuple[dict[str, float], list[str]]:
    """Score probabilities `proba` (n, len(classes)), columns in the order of `classes`: (metrics, notes).

    Metrics that are undefined on this test set are left out, with a note saying why.
    """
    y_true = np.asarray(y_true)
    proba = np.asarray(proba, dtype=np.float64)
    classes = np.asarray(classes)
    if proba.ndim != 2 or proba.shape != (len(y_true), len(classes)):
        raise ValueError(f"proba must have shape ({len(y_true)}, {len(classes)}), got {proba.shape}")
    if len(y_true) == 0:
        return {}, ["no test samples; no classification metrics"]
    codes = encode_labels(y_true, classes)
    values = classification_scores(codes, proba, len(classes), np.ones((len(codes), 1)), ordinal, threshold,
                                   [str(c) for c in classes.tolist()])
    metrics = {name: float(value[0]) for name, value in values.items() if np.isfinite(value[0])}
    return metrics, classification_notes(y_true, classes, codes, ordinal, metrics)


def classification_notes(
    y_true: np.ndarray, classes: np.ndarray, codes: np.ndarray, ordinal: bool, metrics: dict[str, float]
) -> list[str]:
    notes = []
    labels = np.unique(y_true)
    unseen = labels[~np.isin(labels, classes)]
    if len(unseen):
        notes.append(f"test labels {_names(unseen)} are not among the trained classes; they count as errors")
        if ordinal:
            notes.append("kappa_quadratic skipped: some test labels have no place in the trained class order")
    if len(labels) < 2:
        notes.append(f"test set holds a single class {_names(labels)}; AUROC skipped (and AUPRC)")
    elif len(classes) < 2:
        notes.append("fewer than two trained classes; AUROC skipped")
    elif len(classes) > 2:
        missing = [c for k, c in enumerate(classes.tolist()) if not (codes == k).any()]
        if missing:
            notes.append(f"classes {_names(missing)} have no test samples; left out of the macro AUROC and AUPRC")
    elif "auroc" not in metrics:
        notes.append(f"test set lacks positives or negatives for class {classes[1]!r}; AUROC skipped")
    if not ordinal and "kappa" not in metrics:
        notes.append("kappa undefined: labels and predictions are all one class")
    return notes


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, numerator / denominator, np.nan)


def _nanmean(values: np.ndarray) -> np.ndarray:
    """Mean over the last axis ignoring NaN; NaN (without a warning) where every entry is NaN."""
    finite = np.isfinite(values)
    count = finite.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, np.where(finite, values, 0.0).sum(axis=-1) / count, np.nan)


def _names(labels: object) -> str:
    return ", ".join(repr(label) for label in np.asarray(labels).tolist())
