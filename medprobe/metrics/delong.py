"""DeLong's test for AUROC: standard errors and paired comparisons without resampling.

DeLong, DeLong & Clarke-Pearson (1988, Biometrics 44:837) write the AUROC as the mean of structural components,
V10(X_i) = the share of negatives a positive outscores and V01(Y_j) = the share of positives that outscore a
negative (a tie counts half, as in scikit-learn's `roc_auc_score`), and estimate the covariance of several AUROCs
on the same rows by S10 / n_pos + S01 / n_neg, S10 and S01 the sample covariances (ddof 1) of those components.
Sun & Xu (2014, IEEE Signal Processing Letters 21:1389) get every component from midranks, so m score vectors
cost m sorts instead of n_pos · n_neg comparisons.

The comparison is paired: both scores must come from the same rows, and the correlation between them is what makes
the test sharper than comparing two independent intervals. Rows are treated as independent; several images of one
patient call for the subject bootstrap (`medprobe.metrics.bootstrap`) instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class DelongTest:
    """DeLong's paired test of AUROC a against AUROC b on the same rows (two-sided, normal approximation)."""

    auc_a: float
    auc_b: float
    difference: float  # auc_a - auc_b
    se: float  # of the difference
    z: float
    p_value: float
    ci_low: float  # normal interval of the difference
    ci_high: float


def _structural_components(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V10 (m, n_pos), V01 (m, n_neg)) of the m score vectors, after checking the input."""
    positive = np.asarray(positive)
    scores = np.asarray(scores, dtype=np.float64)
    if positive.ndim != 1 or scores.ndim != 2 or scores.shape[1] != len(positive):
        raise ValueError(
            f"DeLong needs labels (n,) and scores (m, n) on the same rows, got {positive.shape} and {scores.shape}"
        )
    if np.isnan(scores).any():
        raise ValueError("DeLong needs scores for every row; some are NaN")
    positive = positive.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos < 2 or n_neg < 2:
        # ddof 1 leaves a single positive (or negative) without a variance, and none without an AUROC.
        raise ValueError(f"DeLong needs at least two positives and two negatives, got {n_pos} and {n_neg}")
    pos_scores, neg_scores = scores[:, positive], scores[:, ~positive]
    both = stats.rankdata(np.concatenate([pos_scores, neg_scores], axis=1), axis=1)
    # A midrank among all rows minus the midrank within its own class counts the other class's rows below it,
    # ties halved.
    v10 = (both[:, :n_pos] - stats.rankdata(pos_scores, axis=1)) / n_neg
    v01 = 1.0 - (both[:, n_pos:] - stats.rankdata(neg_scores, axis=1)) / n_pos
    return v10, v01


def _sample_covariance(components: np.ndarray) -> np.ndarray:
    centred = components - components.mean(axis=1, keepdims=True)
    return centred @ centred.T / (components.shape[1] - 1)


def delong_components(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(AUROC (m,), DeLong covariance (m, m)) of m score vectors `scores` (m, n) for the rows marked `positive` (n,).

    Raises ValueError unless there are at least two positives and two negatives and every score is a number.
    """
    v10, v01 = _structural_components(positive, scores)
    return v10.mean(axis=1), _sample_covariance(v10) / v10.shape[1] + _sample_covariance(v01) / v01.shape[1]


def _normal_quantile(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"the interval level must lie strictly between 0 and 1, got {level}")
    return float(stats.norm.ppf(0.5 + level / 2))


def delong_interval(positive: np.ndarray, scores: np.ndarray, level: float = 0.95) -> tuple[float, float, float, float]:
    """(AUROC, standard error, low, high) of one score vector (n,): the normal interval, clipped to [0, 1]."""
    auc, covariance = delong_components(positive, np.asarray(scores)[None, :])
    se = math.sqrt(covariance[0, 0])
    half = _normal_quantile(level) * se
    return float(auc[0]), se, max(0.0, float(auc[0]) - half), min(1.0, float(auc[0]) + half)


def delong_test(positive: np.ndarray, scores_a: np.ndarray, scores_b: np.ndarray, level: float = 0.95) -> DelongTest:
    """DeLong's test of AUROC(scores_a) = AUROC(scores_b) on the same rows, each scores vector (n,).

    The variance of the difference is that of the components' differences, so scores that rank the rows alike (the
    same scores, or a monotone transform of them) give exactly se 0; then the difference is 0 too and the result is
    z 0, p 1 with the interval [0, 0]. If the components' differences are constant but their mean is not (one
    score separates the classes perfectly and the other is constant, on few rows) the normal approximation has
    nothing to judge the difference by: se is 0 and z, p and the interval are NaN.
    """
    scores_a, scores_b = np.asarray(scores_a), np.asarray(scores_b)
    if scores_a.shape != scores_b.shape:
        raise ValueError(f"DeLong compares scores on the same rows, got shapes {scores_a.shape} and {scores_b.shape}")
    scores = np.stack([scores_a, scores_b])
    v10, v01 = _structural_components(positive, scores)
    d10, d01 = v10[0] - v10[1], v01[0] - v01[1]
    auc_a, auc_b = float(v10[0].mean()), float(v10[1].mean())
    difference = auc_a - auc_b
    if np.ptp(d10) == 0 and np.ptp(d01) == 0:  # no spread: skip the rounding noise of the centred sums
        if difference == 0:
            return DelongTest(auc_a, auc_b, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0)
        return DelongTest(auc_a, auc_b, difference, 0.0, math.nan, math.nan, math.nan, math.nan)
    variance = float(np.var(d10, ddof=1) / len(d10) + np.var(d01, ddof=1) / len(d01))
    se = math.sqrt(variance)
    z = difference / se
    half = _normal_quantile(level) * se
    return DelongTest(auc_a, auc_b, difference, se, z, float(2 * stats.norm.sf(abs(z))), difference - half,
                      difference + half)
