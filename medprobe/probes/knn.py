"""k-NN probe: cosine similarity with DINO's temperature-weighted voting.

As in DINO/DINOv2's k-NN evaluation, features are L2-normalised, each test sample takes its k most similar
training samples, and neighbour i votes with weight exp(sim_i / T) for its class; class probabilities are the
normalised vote sums. Regression uses the same weights for a weighted mean of the neighbours' targets.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Iterator

import numpy as np
import torch
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from medprobe.options import field_default
from medprobe.probes.crossfit import cross_fit, pooled_result
from medprobe.probes.estimator import (
    ProbeEstimator,
    ProbeValueError,
    check_positive_int,
    classification_only,
    from_numpy,
)
from medprobe.probes.inputs import ProbeInputs
from medprobe.probes.options import KnnOptions
from medprobe.probes.result import (
    ProtocolResult,
    align_proba,
    score,
    tested_rows,
)
from medprobe.probes.selection import held_out_score
from medprobe.probes.splits import Fold

_CHUNK_ELEMENTS = 1 << 24  # similarity entries held at once: 64 MiB of float32, whatever the number of rows


class KNNProbe(ProbeEstimator):
    """A scikit-learn estimator for weighted k-NN on cosine similarity.

    `k` larger than the number of training rows uses all of them (`n_neighbors_` says how many).
    `predict_many(X, ks)` gives the outputs for several k from a single top-k search.
    Learned attributes: `train_features_` (L2-normalised), `classes_` and `train_labels_` (class indices) for
    classification or `train_targets_` for regression, `n_neighbors_`, `n_features_in_`. Similarities are float32
    (as in DINO), so a row's outputs can differ by float32 rounding (~1e-7) with the batch it is predicted in.
    """

    # Learned in `fit` (declared for type checking only: unset until fitted, as scikit-learn's contract wants).
    device_: torch.device
    train_features_: torch.Tensor
    classes_: np.ndarray
    train_labels_: torch.Tensor
    train_targets_: torch.Tensor
    n_neighbors_: int

    def __init__(
        self,
        task: str = "classification",
        k: int = field_default(KnnOptions, "primary_k"),
        temperature: float = field_default(KnnOptions, "temperature"),
        device: str | None = None,
    ) -> None:
        self.task = task
        self.k = k
        self.temperature = temperature
        self.device = device

    def fit(self, X: np.ndarray, y: np.ndarray) -> KNNProbe:
        classification = self._check_task()
        temperature = self.temperature
        if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real) or not temperature > 0:
            raise ProbeValueError(f"temperature must be a positive number, got {temperature!r}")
        k = check_positive_int(self.k, "k")
        X, y = validate_data(self, X, y, dtype=np.float32, y_numeric=not classification)
        self.device_ = torch.device(self.device or "cpu")
        self.train_features_ = _l2_normalise(from_numpy(X).to(self.device_))
        if classification:
            check_classification_targets(y)
            self.classes_, labels = np.unique(y, return_inverse=True)
            self.train_labels_ = torch.from_numpy(labels.astype(np.int64)).to(self.device_)
        else:
            self.train_targets_ = torch.from_numpy(y.astype(np.float64)).to(self.device_)
        self.n_neighbors_ = min(k, len(X))
        return self

    def kneighbors(self, X: np.ndarray, n_neighbors: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Cosine similarities and indices of the nearest training rows, most similar first."""
        X = self._validate_rows(X)
        k = self._clip(n_neighbors or self.n_neighbors_)
        chunks = list(self._top_k(X, k))
        if not chunks:
            return np.empty((0, k), np.float32), np.empty((0, k), np.int64)
        sims = torch.cat([chunk_sims for _, chunk_sims, _ in chunks])
        idx = torch.cat([chunk_idx for _, _, chunk_idx in chunks])
        return sims.cpu().numpy(), idx.cpu().numpy()

    def predict_many(self, X: np.ndarray, ks: list[int]) -> dict[int, np.ndarray]:
        """Probabilities (classification) or predictions (regression) for every k in `ks`, keyed by k."""
        X = self._validate_rows(X)
        width = len(self.classes_) if self.task == "classification" else None
        shape = (len(X), width) if width else (len(X),)
        outputs = {k: np.empty(shape) for k in ks}
        for rows, sims, idx in self._top_k(X, self._clip(max(ks))):
            for k in ks:
                outputs[k][rows] = self._vote(sims[:, : self._clip(k)], idx[:, : self._clip(k)]).cpu().numpy()
        return outputs

    @classification_only
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "train_features_")
        return self.predict_many(X, [self.n_neighbors_])[self.n_neighbors_]

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "train_features_")
        outputs = self.predict_many(X, [self.n_neighbors_])[self.n_neighbors_]
        return self.classes_[outputs.argmax(axis=1)] if self.task == "classification" else outputs

    def _validate_rows(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "train_features_")
        return validate_data(self, X, reset=False, dtype=np.float32, ensure_min_samples=0)

    def _clip(self, k: int) -> int:
        return min(check_positive_int(k, "k"), len(self.train_features_))

    def _top_k(self, X: np.ndarray, k: int) -> Iterator[tuple[slice, torch.Tensor, torch.Tensor]]:
        """Top-k of validated float32 rows, in chunks so memory stays bounded by `_CHUNK_ELEMENTS`."""
        queries = _l2_normalise(from_numpy(X).to(self.device_))
        chunk = max(1, _CHUNK_ELEMENTS // len(self.train_features_))
        for start in range(0, len(queries), chunk):
            sims = queries[start : start + chunk] @ self.train_features_.T
            top_sims, top_idx = sims.topk(k, dim=1)
            yield slice(start, start + chunk), top_sims, top_idx

    def _vote(self, sims: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        # Shifting by the largest similarity leaves the normalised weights unchanged and keeps exp() in range.
        sims = sims.double()
        weights = torch.exp((sims - sims[:, :1]) / self.temperature)
        if self.task == "regression":
            return (weights * self.train_targets_[idx]).sum(dim=1) / weights.sum(dim=1)
        scores = torch.zeros(len(idx), len(self.classes_), dtype=torch.float64, device=sims.device)
        scores.scatter_add_(1, self.train_labels_[idx], weights)
        return scores / scores.sum(dim=1, keepdim=True)


def run_knn(
    inputs: ProbeInputs, folds: list[Fold], classes: np.ndarray | None, options: KnnOptions, seed: int,
    device: str | None = None,
) -> ProtocolResult:
    """All k from one top-k search per fold; plain metric names at the headline k (chosen on the validation
    split, else `primary_k`), `k{k}/...` for each k. `options` validated by its model."""
    ks = sorted(set(options.k))
    primary = options.primary_k
    temperature = float(options.temperature)
    notes: list[str] = []
    if primary not in ks:
        notes.append(f"primary_k {primary} is not in k ({', '.join(map(str, ks))}): k = {primary} is run as "
                     f"well (k{primary}/...) and is the headline unless k is chosen on a validation split")
    n_fit = min(len(fold.fit_rows) for fold in folds)
    if primary > n_fit:
        notes.append(f"primary_k {primary} exceeds the {n_fit} training rows; using k={n_fit}")
        primary = n_fit
    too_large = [k for k in ks if k > n_fit]
    if too_large:
        notes.append(f"k {', '.join(map(str, too_large))} skipped: more than the {n_fit} training rows")
    ks = sorted({k for k in ks if k <= n_fit} | {primary})
    selection: str = options.selection
    if selection != "primary_k" and len(folds[0].val) and len(ks) > 1:  # a validation split: one fold
        primary, selection_note = _select_k(inputs, folds[0], ks, classes, selection, temperature, device)
        notes.append(selection_note)
    else:
        selection = "primary_k"

    task = inputs.task_type

    def fit_predict(_: int, fold: Fold) -> tuple[dict[Hashable, np.ndarray], np.ndarray | None]:
        probe = KNNProbe(task=task, k=max(ks), temperature=temperature, device=device)
        probe.fit(inputs.X[fold.fit_rows], inputs.y[fold.fit_rows])
        outputs = probe.predict_many(inputs.X[fold.test], ks)
        return {k: outputs[k] for k in ks}, probe.classes_ if task == "classification" else None

    outputs = cross_fit(inputs, folds, classes, fit_predict, variants=ks)
    params: dict[str, str | float | int] = {
        "k": primary,
        "ks": ",".join(map(str, ks)),
        "temperature": temperature,
        "k_selection": selection if selection == "primary_k" else f"val {selection}",
    }
    result = pooled_result(inputs, folds, outputs[primary], classes, options, seed, params, notes)
    test, plain = tested_rows(folds), dict(result.metrics)
    for k in ks:
        k_metrics = plain if k == primary else score(inputs, test, outputs[k][test], classes, options, seed,
                                                     intervals=False)[0]
        result.metrics.update({f"k{k}/{name}": value for name, value in k_metrics.items()})
    return result


def _select_k(inputs: ProbeInputs, fold: Fold, ks: list[int], classes: np.ndarray | None, criterion: str,
              temperature: float, device: str | None) -> tuple[int, str]:
    """The k with the best validation score of a probe fitted on the train rows alone (ties: the smaller k);
    the test predictions then come from train + val as before."""
    usable = [k for k in ks if k <= len(fold.train)]
    if not usable:
        return ks[0], f"k kept at {ks[0]}: too few train rows to score k on the validation split"
    probe = KNNProbe(task=inputs.task_type, k=max(usable), temperature=temperature, device=device)
    probe.fit(inputs.X[fold.train], inputs.y[fold.train])
    y_val = inputs.y[fold.val]
    scores = []
    for k, outputs in probe.predict_many(inputs.X[fold.val], usable).items():
        if classes is not None:
            outputs = align_proba(outputs, probe.classes_, classes)
        scores.append((held_out_score(criterion, y_val, outputs, classes), k))
    finite = [(score, k) for score, k in scores if np.isfinite(score)]
    if not finite:
        return ks[0], f"k kept at {ks[0]}: validation {criterion} undefined for every k"
    best = max(score for score, _ in finite)
    chosen = min(k for score, k in finite if score >= best - 1e-12)
    metric = criterion if inputs.task_type == "classification" else "mse"
    return chosen, f"k = {chosen} chosen on the validation split by {metric} among {', '.join(map(str, usable))}"


def _l2_normalise(features: torch.Tensor) -> torch.Tensor:
    """Unit rows; an all-zero row stays zero (similarity 0 to everything) instead of becoming NaN."""
    return features / features.norm(dim=1, keepdim=True).clamp_min(1e-12)
