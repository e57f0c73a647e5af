"""Linear probe: L2 logistic regression (classification) or ridge (regression) on standardised embeddings.

Fitted in torch (`medprobe.probes.linear_solvers`): full-batch L-BFGS along a warm-started regularisation path for
logistic regression, one eigendecomposition for every ridge alpha; runs on a GPU when given `device="cuda"`.
The objective is scikit-learn's, so `LogisticRegression(C=best_C_)` / `Ridge(alpha=best_alpha_)` on the same
standardised features give the same model (the tests check this).

The regularisation is chosen on held-out data by a grid search, as in DINOv2's logistic-regression evaluation
(`dinov2/eval/log_regression.py`, C = 10^p for p in linspace(-6, 5, 45)): the default C grid spans the same eleven
decades, one value per decade (`DEFAULT_C_GRID`: 1e-6 … 1e5); ridge, whose grid costs nothing extra, uses four
values per decade over 1e-4 … 1e6 (`DEFAULT_ALPHA_GRID`). The held-out data is the validation split when there is
one, else an inner cross-validation grouped by subject. The best C has the best held-out `selection` score,
computed on the held-out predictions of all inner folds pooled: log-loss by default (DINOv2 uses accuracy, which on
small data ties over many C and then lands on the strongest regularisation, where every probability is ~0.5), or
accuracy, balanced accuracy or AUROC; ties go to the stronger regularisation (DINOv2's first maximum over an
increasing C). The best alpha has the lowest held-out mean squared error (ties go to the larger alpha). A choice
on the edge of the grid is noted. The chosen model is then refitted on train + val.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from scipy.special import expit, softmax
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d, validate_data

from medprobe.options import field_default
from medprobe.probes.crossfit import cross_fit, pooled_result
from medprobe.probes.estimator import ProbeEstimator, ProbeValueError, check_positive_int, classification_only
from medprobe.probes.inputs import ProbeInputs
from medprobe.probes.linear_solvers import LogisticSolution, RidgeEigen, logistic_path, logistic_proba
from medprobe.probes.options import LinearOptions
from medprobe.probes.result import ProtocolResult, align_proba
from medprobe.probes.selection import SELECTION_CRITERIA, held_out_score
from medprobe.probes.splits import Fold, group_kfold

DEFAULT_C_GRID = np.logspace(-6, 5, 12)
DEFAULT_ALPHA_GRID = np.logspace(-4, 6, 41)


class LinearProbe(ProbeEstimator):
    """A scikit-learn estimator: standardise, then a grid-searched linear model, fitted in torch.

    `fit(X, y, groups=None, X_val=None, y_val=None)`: with `X_val, y_val` the grid is scored on those rows
    (then the final model is refitted on train + val); otherwise by `inner_folds`-fold cross-validation on
    the training rows, grouped by `groups` (subject ids) so no subject is on both sides of an inner split.
    `device` ("cpu", "cuda", ...) and `dtype` (default float32; float64 for ridge on the CPU) choose where
    and how it fits; `predict`/`predict_proba` compute in float64 on the CPU from `coef_` and `intercept_`.
    `class_weight`: None, "balanced" (from the rows each fit sees) or a dict {class: weight} (classes not named
    weigh 1), as in scikit-learn. `task` makes it a classifier or a regressor (see `medprobe.probes.estimator`).

    `selection`: the held-out criterion for C (see the module docstring); regression always uses MSE.

    Learned attributes: `mean_`, `scale_` (standardisation from the fitted rows; constant features get
    scale 1), `grid_`, `search_scores_` (per grid value, higher is better: negative log-loss, accuracy, balanced
    accuracy or AUROC; negative MSE for regression), `selection_metric_`, `best_C_` or
    `best_alpha_`, `coef_` (classes × features, or (1, features) for two classes, like scikit-learn) and
    `intercept_` (on standardised features), `classes_` (classification), `selection_` ("val" or "inner_cv"),
    `converged_`, `notes_`, `n_features_in_` (and `feature_names_in_` when fitted on a DataFrame).
    """

    # Declared for type checking only (unset until fitted): ridge's intercept is a float, as in scikit-learn's Ridge.
    coef_: np.ndarray
    intercept_: np.ndarray | float

    def __init__(
        self,
        task: str = "classification",
        grid: Any = None,
        class_weight: str | None = field_default(LinearOptions, "class_weight"),
        inner_folds: int = field_default(LinearOptions, "inner_folds"),
        selection: str = field_default(LinearOptions, "selection"),
        seed: int = 0,
        max_iter: int = 1000,
        device: str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.task = task
        self.grid = grid
        self.class_weight = class_weight
        self.inner_folds = inner_folds
        self.selection = selection
        self.seed = seed
        self.max_iter = max_iter
        self.device = device
        self.dtype = dtype

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray | None = None,
        X_val: np.ndarray | None = None,
        y_val: np.ndarray | None = None,
    ) -> LinearProbe:
        classification = self._check_task()
        if not (self.class_weight is None or isinstance(self.class_weight, Mapping) or self.class_weight == "balanced"):
            raise ProbeValueError(f"class_weight must be 'balanced', a dict or None, got {self.class_weight!r}")
        max_iter = check_positive_int(self.max_iter, "max_iter")
        if self.selection not in SELECTION_CRITERIA:
            raise ProbeValueError(f"selection must be one of {', '.join(SELECTION_CRITERIA)}, got {self.selection!r}")
        self.selection_metric_ = self.selection if classification else "mse"
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=not classification,
                             ensure_min_samples=2 if classification else 1)
        if classification:
            check_classification_targets(y)
        has_val = X_val is not None and y_val is not None and len(y_val) > 0
        if has_val:
            X_val = validate_data(self, X_val, reset=False, dtype=np.float64)
            y_val = column_or_1d(y_val, warn=True)
            check_consistent_length(X_val, y_val)
            if classification:
                check_classification_targets(y_val)
        self.device_ = torch.device(self.device or "cpu")
        # Logistic fits stop at scikit-learn's gradient tolerance, far above float32 rounding; ridge's closed form
        # is cheap and is held to 1e-6 of scikit-learn, so it keeps float64 on the CPU.
        cpu_ridge = self.device_.type == "cpu" and not classification
        self.dtype_ = self.dtype or (torch.float64 if cpu_ridge else torch.float32)
        self.grid_ = _check_grid(self.grid, DEFAULT_C_GRID if classification else DEFAULT_ALPHA_GRID)
        self.notes_: list[str] = []
        if classification:
            self.classes_ = np.unique(np.concatenate([y, y_val]) if has_val else y)
            if len(self.classes_) < 2:
                raise ProbeValueError(
                    f"the training rows hold a single class {self.classes_.tolist()}; need two or more"
                )

        if has_val:
            assert X_val is not None and y_val is not None  # has_val says both are given
            splits = [(np.arange(len(X)), np.arange(len(X), len(X) + len(X_val)))]
            X, y = np.vstack([X, X_val]), np.concatenate([y, y_val])
            self.selection_ = "val"
        else:
            splits = self._inner_splits(y, groups)
            self.selection_ = "inner_cv"
        self.converged_ = True
        self.search_scores_, warm = self._search(X, y, splits, max_iter)
        best = self._pick(self.search_scores_) if splits else int(len(self.grid_) // 2)
        if splits:
            self._note_grid_edge(best)
        self.mean_, self.scale_ = _standardisation(X)
        Z = self._tensor(self._standardise(X))
        if classification:
            self.best_C_ = float(self.grid_[best])
            codes = torch.as_tensor(np.searchsorted(self.classes_, y), device=self.device_)
            init = warm[best] if warm else None
            solution = logistic_path(Z, codes, len(self.classes_), np.array([self.best_C_]),
                                     self._sample_weight(y), max_iter, init)[0]
            self.converged_ &= solution.converged
            self.coef_ = solution.weight.T.cpu().numpy().astype(np.float64)
            self.intercept_ = solution.bias.cpu().numpy().astype(np.float64)
        else:
            self.best_alpha_ = float(self.grid_[best])
            eigen = RidgeEigen.fit(Z, self._tensor(y.astype(np.float64)))
            coef = eigen.coefficients(self._tensor(np.array([self.best_alpha_])))[:, 0]
            self.coef_ = coef.cpu().numpy().astype(np.float64)
            self.intercept_ = eigen.y_mean
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "coef_")
        if self.task == "classification":
            return self.classes_[self.predict_proba(X).argmax(axis=1)]
        return self._standardise(self._validate_rows(X)) @ self.coef_ + self.intercept_

    @classification_only
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """In float64 from `coef_` and `intercept_` (as the published probe heads do), whatever the fitting dtype:
        a row's probabilities do not depend on the other rows predicted with it."""
        logits = self._standardise(self._validate_rows(X)) @ self.coef_.T + self.intercept_
        if logits.shape[1] == 1:  # two classes: one logit, the sigmoid model
            positive = expit(logits[:, 0])
            return np.stack([1 - positive, positive], axis=1)
        return softmax(logits, axis=1)

    def _validate_rows(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "coef_")
        return validate_data(self, X, reset=False, dtype=np.float64, ensure_min_samples=0)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(array, dtype=self.dtype_, device=self.device_)

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        return (X - self.mean_) / self.scale_

    def _sample_weight(self, y: np.ndarray) -> torch.Tensor | None:
        """Per-row weights: scikit-learn's "balanced" n / (n_classes · count of the row's class), from the fitted
        rows, or the dict's weight of the row's class."""
        if self.class_weight is None:
            return None
        labels, codes, counts = np.unique(y, return_inverse=True, return_counts=True)
        if isinstance(self.class_weight, Mapping):  # {label: weight}; a label not named weighs 1, as in scikit-learn
            return self._tensor(np.array([float(self.class_weight.get(label, 1.0)) for label in labels])[codes])
        return self._tensor(len(y) / (len(labels) * counts[codes]))

    def _inner_splits(self, y: np.ndarray, groups: np.ndarray | None) -> list[tuple[np.ndarray, np.ndarray]]:
        groups = np.arange(len(y)) if groups is None else np.asarray(groups)
        n_splits = min(self.inner_folds, len(np.unique(groups)))
        if self.task == "classification":
            # Stratified folds need every class in every fold: no more folds than the rarest class has subjects.
            rarest = min(len(np.unique(groups[y == label])) for label in np.unique(y))
            if rarest < n_splits:
                self.notes_.append(f"inner cross-validation reduced to {max(rarest, 1)} fold(s): the rarest class "
                                   f"has {rarest} training subject(s)")
            n_splits = min(n_splits, rarest)
        if n_splits < 2:
            self.notes_.append("too few training subjects for inner cross-validation: middle of the grid used")
            return []
        return group_kfold(y, groups, n_splits, self.task == "classification", self.seed)

    def _search(
        self, X: np.ndarray, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]], max_iter: int
    ) -> tuple[np.ndarray, list[LogisticSolution]]:
        """The held-out score per grid value (higher is better), on the held-out rows of all splits pooled; and
        the first split's solutions, to warm-start the final fit."""
        if not splits:
            return np.full(len(self.grid_), np.nan), []
        if self.task == "regression":
            return self._search_ridge(X, y, splits), []
        held_labels = np.concatenate([y[held_out] for _, held_out in splits])
        proba = np.zeros((len(self.grid_), len(held_labels), len(self.classes_)))
        warm: list[LogisticSolution] = []
        start = 0
        for fitted, held_out in splits:
            rows = slice(start, start + len(held_out))
            start += len(held_out)
            fitted_classes = np.unique(y[fitted])
            if len(fitted_classes) < 2:  # an inner split with one class can only predict the one it has
                proba[:, rows, np.searchsorted(self.classes_, fitted_classes[0])] = 1.0
                continue
            mean, scale = _standardisation(X[fitted])
            Z_fit, Z_held = self._tensor((X[fitted] - mean) / scale), self._tensor((X[held_out] - mean) / scale)
            codes = torch.as_tensor(np.searchsorted(fitted_classes, y[fitted]), device=self.device_)
            path = logistic_path(Z_fit, codes, len(fitted_classes), self.grid_, self._sample_weight(y[fitted]),
                                 max_iter)
            if not warm and len(fitted_classes) == len(self.classes_):
                warm = path
            for position, solution in enumerate(path):
                fold_proba = logistic_proba(Z_held, solution).cpu().numpy().astype(np.float64)
                proba[position, rows] = align_proba(fold_proba, fitted_classes, self.classes_)
        scores = [held_out_score(self.selection, held_labels, p, self.classes_) for p in proba]
        return np.array(scores), warm

    def _search_ridge(self, X: np.ndarray, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
        """Negative held-out mean squared error per alpha."""
        totals = np.zeros(len(self.grid_))
        for fitted, held_out in splits:
            mean, scale = _standardisation(X[fitted])
            Z_fit, Z_held = self._tensor((X[fitted] - mean) / scale), self._tensor((X[held_out] - mean) / scale)
            eigen = RidgeEigen.fit(Z_fit, self._tensor(y[fitted].astype(np.float64)))
            predicted = Z_held @ eigen.coefficients(self._tensor(self.grid_)) + eigen.y_mean
            residual = predicted - self._tensor(y[held_out].astype(np.float64))[:, None]
            totals -= (residual**2).sum(dim=0).cpu().numpy()
        return totals / sum(len(held_out) for _, held_out in splits)

    def _note_grid_edge(self, best: int) -> None:
        if len(self.grid_) < 3 or 0 < best < len(self.grid_) - 1:
            return
        name = "C" if self.task == "classification" else "alpha"
        side = "lowest" if best == 0 else "highest"
        self.notes_.append(f"{name} = {self.grid_[best]:g} is the {side} value of the grid (held-out "
                           f"{self.selection_metric_}): the best {name} may lie beyond it; widen `grid`")

    def _pick(self, scores: np.ndarray) -> int:
        finite = np.where(np.isfinite(scores), scores, -np.inf)
        best = np.flatnonzero(finite >= finite.max() - 1e-12)
        return int(best[0] if self.task == "classification" else best[-1])


def run_linear(
    inputs: ProbeInputs, folds: list[Fold], classes: np.ndarray | None, options: LinearOptions, seed: int,
    device: str | None = None,
) -> ProtocolResult:
    """Fit one probe per fold (`medprobe.probes.crossfit`) and score the pooled test predictions."""
    task = inputs.task_type
    chosen: list[float] = []
    notes: list[str] = []
    probes: list[LinearProbe] = []

    def fit_predict(_: int, fold: Fold) -> tuple[dict[Hashable, np.ndarray], np.ndarray | None]:
        probe = LinearProbe(task=task, grid=options.grid, class_weight=options.class_weight,
                            inner_folds=options.inner_folds, selection=options.selection, seed=seed, device=device)
        if len(fold.val):
            probe.fit(inputs.X[fold.train], inputs.y[fold.train], X_val=inputs.X[fold.val], y_val=inputs.y[fold.val])
        else:
            probe.fit(inputs.X[fold.train], inputs.y[fold.train], groups=inputs.subjects[fold.train])
        probes.append(probe)
        chosen.append(probe.best_C_ if task == "classification" else probe.best_alpha_)
        notes.extend(note for note in probe.notes_ if note not in notes)
        X_test = inputs.X[fold.test]
        if task == "classification":
            return {None: probe.predict_proba(X_test)}, probe.classes_
        return {None: probe.predict(X_test)}, None

    outputs = cross_fit(inputs, folds, classes, fit_predict)[None]
    if not all(probe.converged_ for probe in probes):
        notes.append("logistic regression hit max_iter before converging in at least one fold")
    if task == "regression" and options.class_weight is not None:
        notes.append("class_weight is ignored for regression")
    name = "C" if task == "classification" else "alpha"
    values, counts = np.unique(chosen, return_counts=True)
    last = probes[-1]
    params: dict[str, str | float | int] = {
        name: float(values[counts.argmax()]),  # the most frequent choice; the smaller on a tie
        "selection": last.selection_,
        "selection_metric": last.selection_metric_,
        "class_weight": str(options.class_weight),
        "inner_folds": options.inner_folds,
        "grid": ",".join(f"{value:g}" for value in last.grid_),
    }
    if inputs.split is None:
        params[f"{name}_per_fold"] = ",".join(f"{value:g}" for value in chosen)
    return pooled_result(inputs, folds, outputs, classes, options, seed, params, notes)


def _standardisation(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale; a (numerically) constant feature gets scale 1 so it standardises to 0, never NaN."""
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale <= 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1.0)] = 1.0
    return mean, scale


def _check_grid(grid: Any, default: np.ndarray) -> np.ndarray:
    try:
        values = default if grid is None else np.asarray(grid, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        values = np.empty(0)
    if len(values) == 0 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ProbeValueError(f"grid must be a non-empty list of positive numbers, got {grid!r}")
    return np.unique(values)
