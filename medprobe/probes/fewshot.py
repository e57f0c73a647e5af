"""Few-shot probe: SimpleShot nearest-centroid and a linear (ridge) classifier over sampled episodes.

SimpleShot (Wang et al., 2019, "CL2N"): subtract the mean of the training pool, L2-normalise, average each
class's support features into a centroid and assign a query to the most cosine-similar centroid.
The linear probe per episode is a ridge classifier on the same CL2N features (scikit-learn's `RidgeClassifier`:
targets ±1 per class, intercept, `alpha` = option `linear_alpha`, default 1.0 for unit-norm rows). It is chosen
over an iterative logistic fit because its closed form (dual: one (support × support) solve per episode) batches
all episodes into one `torch.linalg.solve`, and a handful of shots leaves nothing to tune a C on. Shots are
counted in subjects, not images: an episode with k shots draws k subjects per class from the training pool and
uses all of that subject's rows of that class, so a patient with many images cannot fill a class alone.
Episode e of shot level k in fold f always draws from the same seed, whatever the number of episodes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from medprobe.metrics.catalogue import ci_high, ci_low
from medprobe.probes.inputs import ProbeInputs
from medprobe.probes.options import FewshotOptions
from medprobe.probes.result import ProtocolResult, fit_size, predictions_frame, tested_rows
from medprobe.probes.splits import Fold

_CHUNK_ELEMENTS = 1 << 24  # floats held at once when scoring a batch of episodes


def episode_rng(seed: int, fold: int, shots: int, episode: int) -> np.random.Generator:
    return np.random.default_rng([seed, fold, shots, episode])


def sample_episode(candidates: list[np.ndarray], shots: int, rng: np.random.Generator) -> list[np.ndarray]:
    """`shots` distinct entries of each class's candidates (its subjects), without replacement."""
    return [options[rng.choice(len(options), size=shots, replace=False)] for options in candidates]


def simpleshot_transform(X: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """Centre on the training-pool mean and L2-normalise (an all-zero row stays zero)."""
    centred = np.asarray(X, dtype=np.float64) - mean
    norms = np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)
    return (centred / norms).astype(np.float32)


def simpleshot_episodes(
    X_pool: np.ndarray,
    y_pool: np.ndarray,
    subjects_pool: np.ndarray,
    X_query: np.ndarray,
    classes: np.ndarray,
    shots: int,
    rngs: list[np.random.Generator],
    linear_alpha: float | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Predicted class indices, shape (episodes, queries): one episode per generator in `rngs`.

    Episodes are batched: rows are summed once per (class, subject) unit, so a centroid is a sum over the k
    sampled units divided by their row count, computed for many episodes in one array operation.
    Every class must have at least `shots` subjects in the pool. With `linear_alpha`, also return the ridge
    classifier's predictions on the same episodes: (simpleshot, ridge).
    """
    mean = X_pool.mean(axis=0, dtype=np.float64)
    pool, queries = simpleshot_transform(X_pool, mean), simpleshot_transform(X_query, mean)
    # Subjects numbered by first appearance, not by their (salted) pseudonyms: episodes depend on the seed only.
    subject_codes, subject_names = pd.factorize(np.asarray(subjects_pool))
    unit_keys, unit_of_row = np.unique(
        np.searchsorted(classes, y_pool) * len(subject_names) + subject_codes, return_inverse=True
    )
    order = np.argsort(unit_of_row, kind="stable")
    starts = np.searchsorted(unit_of_row[order], np.arange(len(unit_keys)))
    unit_sums = np.add.reduceat(pool[order], starts, axis=0, dtype=np.float64)
    unit_counts = np.bincount(unit_of_row, minlength=len(unit_keys))
    unit_class = unit_keys // len(subject_names)
    candidates = [np.flatnonzero(unit_class == c) for c in range(len(classes))]  # in order of appearance

    chosen = np.stack([np.stack(sample_episode(candidates, shots, rng)) for rng in rngs])  # (E, C, shots)
    n_classes, dim = len(classes), pool.shape[1]
    batch = max(1, _CHUNK_ELEMENTS // max(n_classes * shots * dim, len(queries) * n_classes))
    predictions = np.empty((len(rngs), len(queries)), dtype=np.int64)
    for start in range(0, len(rngs), batch):
        units = chosen[start : start + batch]
        centroids = unit_sums[units].sum(axis=2) / unit_counts[units].sum(axis=2)[..., None]
        centroids /= np.maximum(np.linalg.norm(centroids, axis=2, keepdims=True), 1e-12)
        # One (queries × dim) · (dim × batch·classes) product scores every episode of the batch.
        scores = queries @ centroids.astype(np.float32).reshape(-1, dim).T
        predictions[start : start + batch] = scores.reshape(len(queries), -1, n_classes).argmax(axis=2).T
    if linear_alpha is None:
        return predictions
    unit_rows = np.split(order, starts[1:])  # the pool rows of every unit
    return predictions, ridge_episodes(pool, queries, unit_rows, unit_class, chosen, n_classes, linear_alpha)


def ridge_episodes(
    pool: np.ndarray,
    queries: np.ndarray,
    unit_rows: list[np.ndarray],
    unit_class: np.ndarray,
    chosen: np.ndarray,
    n_classes: int,
    alpha: float,
) -> np.ndarray:
    """Ridge-classifier predictions (episodes, queries), every episode's support rows padded into one batch.

    Dual closed form per episode: with the support rows X centred on their mean x̄ and the ±1 targets Y centred,
    A = (Xc Xcᵀ + αI)⁻¹ Yc, W = Xcᵀ A and the intercept ȳ - x̄ W. Padding indexes an all-zero row with a zero
    target, masked out of the centring, so its row of A is zero and it changes nothing. The products with the
    features (Xc Xcᵀ, Xcᵀ A, queries · W) run in float32 on the unit-norm CL2N rows; the means and the Cholesky
    solve in float64.
    """
    episodes = [np.concatenate([unit_rows[u] for u in units.ravel()]) for units in chosen]
    width = max(len(rows) for rows in episodes)
    n_pool, dim = pool.shape
    batch = max(1, _CHUNK_ELEMENTS // max(width * (dim + width), len(queries) * n_classes))
    pool_t = torch.cat([torch.from_numpy(np.ascontiguousarray(pool, dtype=np.float32)), torch.zeros(1, dim)])
    queries_t = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32))
    row_class = torch.from_numpy(unit_class.astype(np.int64))[_row_units(unit_rows, n_pool)]
    targets = torch.cat([2.0 * torch.nn.functional.one_hot(row_class, n_classes).double() - 1.0,
                         torch.zeros(1, n_classes, dtype=torch.float64)])  # the padding row's target is 0
    predictions = np.empty((len(episodes), len(queries)), dtype=np.int64)
    for start in range(0, len(episodes), batch):
        part = episodes[start : start + batch]
        index = torch.full((len(part), width), n_pool, dtype=torch.int64)
        for row, rows in enumerate(part):
            index[row, : len(rows)] = torch.from_numpy(rows)
        mask = (index < n_pool)[..., None]  # (b, width, 1)
        count = mask.sum(dim=1, keepdim=True, dtype=torch.float64)
        X, Y = pool_t[index], targets[index]
        x_mean = X.sum(dim=1, keepdim=True).double() / count  # (b, 1, dim)
        y_mean = Y.sum(dim=1, keepdim=True) / count
        Xc = (X - x_mean.float()) * mask  # padding rows stay zero
        gram = (Xc @ Xc.transpose(1, 2)).double()
        gram.diagonal(dim1=1, dim2=2).add_(alpha)
        lower = torch.linalg.cholesky(gram)
        half = torch.linalg.solve_triangular(lower, (Y - y_mean) * mask, upper=False)
        A = torch.linalg.solve_triangular(lower.mT, half, upper=True)  # (b, width, classes)
        weight = Xc.transpose(1, 2) @ A.float()  # (b, dim, classes)
        bias = (y_mean - x_mean @ weight.double()).float()  # (b, 1, classes)
        # One (queries × dim) · (dim × b·classes) product scores every episode of the batch.
        scores = queries_t @ weight.permute(1, 0, 2).reshape(dim, -1)
        scores = scores.view(len(queries), len(part), n_classes) + bias.transpose(0, 1)
        predictions[start : start + batch] = scores.argmax(dim=2).T.numpy()
    return predictions


def _row_units(unit_rows: list[np.ndarray], n_rows: int) -> torch.Tensor:
    unit_of_row = np.empty(n_rows, dtype=np.int64)
    for unit, rows in enumerate(unit_rows):
        unit_of_row[rows] = unit
    return torch.from_numpy(unit_of_row)


def run_fewshot(
    inputs: ProbeInputs, folds: list[Fold], classes: np.ndarray | None, options: FewshotOptions, seed: int,
    device: str | None = None,
) -> ProtocolResult:
    """Per shot level and classifier (SimpleShot; `linear_` the ridge classifier): accuracy over episodes (mean,
    2.5/97.5 percentiles: the interval over episodes) on the pooled test rows."""
    shot_levels = sorted(set(options.shots))
    episodes = options.episodes
    alpha = options.linear_alpha
    params: dict[str, str | float | int] = {
        "episodes": episodes, "shots": ",".join(map(str, shot_levels)), "linear_alpha": float(alpha),
    }
    if inputs.split is None:
        params["folds"] = len(folds)
    if inputs.task_type != "classification":
        return _empty(inputs, classes, params, folds, ["few-shot is classification only; no metrics for regression"])
    assert classes is not None, "evaluate passes the training classes for every classification run"

    available = min(
        len(np.unique(inputs.subjects[fold.fit_rows][inputs.y[fold.fit_rows] == label]))
        for fold in folds
        for label in classes
    )
    evaluated = [k for k in shot_levels if k <= available]
    notes = []
    if len(evaluated) < len(shot_levels):
        skipped = ", ".join(str(k) for k in shot_levels if k > available)
        notes.append(f"shots {skipped} skipped: the smallest class has {available} training subject(s)")
    if not evaluated:
        return _empty(inputs, classes, params, folds, notes)

    test = tested_rows(folds)
    y_test = inputs.y[test]
    index = {label: code for code, label in enumerate(classes.tolist())}
    codes = np.array([index.get(label, -1) for label in y_test.tolist()], dtype=np.int64)  # -1: unseen class
    metrics: dict[str, float] = {}
    for shots in evaluated:
        predictions = np.full((episodes, len(inputs.y)), -1, dtype=np.int64)
        linear = predictions.copy()
        for number, fold in enumerate(folds):
            fit = fold.fit_rows
            rngs = [episode_rng(seed, number, shots, episode) for episode in range(episodes)]
            predictions[:, fold.test], linear[:, fold.test] = simpleshot_episodes(
                inputs.X[fit], inputs.y[fit], inputs.subjects[fit], inputs.X[fold.test], classes, shots, rngs,
                linear_alpha=float(alpha),
            )
        predictions = predictions[:, test]
        for prefix, episode_predictions in (("", predictions), ("linear_", linear[:, test])):
            accuracy, balanced = _episode_scores(episode_predictions, codes, y_test)
            metrics[f"shots{shots}/{prefix}accuracy_mean"] = float(accuracy.mean())
            metrics[ci_low(f"shots{shots}/{prefix}accuracy")] = float(np.percentile(accuracy, 2.5))
            metrics[ci_high(f"shots{shots}/{prefix}accuracy")] = float(np.percentile(accuracy, 97.5))
            metrics[f"shots{shots}/{prefix}balanced_accuracy_mean"] = float(balanced.mean())

    top = evaluated[-1]
    metrics["accuracy"] = metrics[f"shots{top}/accuracy_mean"]
    metrics["balanced_accuracy"] = metrics[f"shots{top}/balanced_accuracy_mean"]
    metrics[ci_low("accuracy")] = metrics[ci_low(f"shots{top}/accuracy")]
    metrics[ci_high("accuracy")] = metrics[ci_high(f"shots{top}/accuracy")]
    metrics["linear_accuracy"] = metrics[f"shots{top}/linear_accuracy_mean"]
    # Per-sample output at the largest shot level: the share of episodes voting for each class.
    votes = np.stack([(predictions == c).mean(axis=0) for c in range(len(classes))], axis=1)
    if (codes < 0).any():
        notes.append("some test labels have no training rows; they count as errors")
    params["shots_evaluated"] = ",".join(map(str, evaluated))
    return ProtocolResult(
        metrics=metrics,
        predictions=predictions_frame(inputs, test, votes, classes),
        params=params,
        n_train=fit_size(folds),
        n_test=len(test),
        notes=notes,
    )


def _episode_scores(predictions: np.ndarray, codes: np.ndarray, y_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and balanced accuracy (mean recall over the test labels) of every episode."""
    correct = predictions == codes
    recalls = [correct[:, y_test == label].mean(axis=1) for label in np.unique(y_test)]
    return correct.mean(axis=1), np.mean(recalls, axis=0)


def _empty(
    inputs: ProbeInputs, classes: np.ndarray | None, params: dict, folds: list[Fold], notes: list[str]
) -> ProtocolResult:
    none = np.empty(0, dtype=np.int64)
    outputs = np.empty((0, len(classes))) if classes is not None else np.empty(0)
    return ProtocolResult(
        metrics={},
        predictions=predictions_frame(inputs, none, outputs, classes),
        params=params,
        n_train=fit_size(folds),
        n_test=0,
        notes=notes,
    )
