"""Sufficient statistics a site shares, and their exact aggregation.

Every function here either reduces one site's rows to sums (run at the site) or combines the sums of all sites
(run at the server). Combining sums is exact: the result equals the same quantity computed on the pooled rows, up
to floating-point summation order. Sums are float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: Features whose pooled standard deviation is below this are left unscaled (divided by 1).
MIN_STD = 1e-8


@dataclass(frozen=True)
class Moments:
    count: int
    total: np.ndarray  # (d,) sum of rows
    squares: np.ndarray  # (d,) sum of squared rows


@dataclass(frozen=True)
class Standardisation:
    mean: np.ndarray
    std: np.ndarray

    def apply(self, X: np.ndarray) -> np.ndarray:
        return ((np.asarray(X, dtype=np.float64) - self.mean) / self.std).astype(np.float32)


def moments(X: np.ndarray) -> Moments:
    X = np.asarray(X, dtype=np.float64)
    return Moments(len(X), X.sum(axis=0), np.square(X).sum(axis=0))


def pooled_standardisation(parts: Sequence[Moments]) -> Standardisation:
    """Mean and population standard deviation (ddof 0) of the pooled rows."""
    count = sum(p.count for p in parts)
    if count == 0:
        raise ValueError("no training rows at any site")
    mean = _add([p.total for p in parts]) / count
    variance = np.maximum(_add([p.squares for p in parts]) / count - np.square(mean), 0.0)
    std = np.sqrt(variance)
    return Standardisation(mean, np.where(std < MIN_STD, 1.0, std))


@dataclass(frozen=True)
class ClassSums:
    """Per-class sums of (transformed) rows: (C, d) sums and (C,) counts in the order of the global label map."""

    sums: np.ndarray
    counts: np.ndarray


def class_sums(X: np.ndarray, codes: np.ndarray, n_classes: int) -> ClassSums:
    X = np.asarray(X, dtype=np.float64)
    sums = np.zeros((n_classes, X.shape[1]))
    np.add.at(sums, codes, X)
    return ClassSums(sums, np.bincount(codes, minlength=n_classes).astype(np.int64))


def pooled_class_sums(parts: Sequence[ClassSums]) -> ClassSums:
    return ClassSums(_add([p.sums for p in parts]), _add([p.counts for p in parts]))


@dataclass(frozen=True)
class RidgeStats:
    """Everything ridge regression with an unpenalised intercept needs: XᵀX, Xᵀy, n, Σx, Σy."""

    gram: np.ndarray  # (d, d)
    cross: np.ndarray  # (d,)
    count: int
    x_total: np.ndarray  # (d,)
    y_total: float


def ridge_stats(X: np.ndarray, y: np.ndarray) -> RidgeStats:
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return RidgeStats(X.T @ X, X.T @ y, len(X), X.sum(axis=0), float(y.sum()))


def pooled_ridge_stats(parts: Sequence[RidgeStats]) -> RidgeStats:
    return RidgeStats(
        _add([p.gram for p in parts]), _add([p.cross for p in parts]), sum(p.count for p in parts),
        _add([p.x_total for p in parts]), float(sum(p.y_total for p in parts)),
    )


def _add(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Element-wise sum in the given order, as the builtin `sum` (whose empty sum would be the int 0)."""
    if not arrays:
        raise ValueError("no sites' statistics to combine")
    return sum(arrays[1:], start=arrays[0].copy())
