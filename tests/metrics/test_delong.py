"""DeLong's fast midrank algorithm equals the pairwise definition of DeLong, DeLong & Clarke-Pearson (1988)."""

import itertools

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from medprobe.metrics.delong import delong_components, delong_interval, delong_test


def _data(seed: int, m: int, n: int = 70) -> tuple[np.ndarray, np.ndarray]:
    """Labels and m correlated score vectors, rounded to one decimal so that many scores tie."""
    rng = np.random.default_rng(seed)
    positive = rng.random(n) < 0.4
    shared = rng.normal(size=n) + positive
    scores = np.stack([shared + rng.normal(scale=0.3 + 0.4 * k, size=n) + 0.3 * k * positive for k in range(m)])
    return positive, np.round(scores, 1)


def _direct_delong(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs and covariance from the definitions in DeLong et al. (1988), with explicit pairwise loops."""

    def psi(x: float, y: float) -> float:
        return 1.0 if y < x else 0.5 if y == x else 0.0

    k = len(scores)
    xs, ys = scores[:, positive], scores[:, ~positive]
    m, n = xs.shape[1], ys.shape[1]
    v10 = np.zeros((k, m))
    v01 = np.zeros((k, n))
    for r in range(k):
        for i, j in itertools.product(range(m), range(n)):
            value = psi(xs[r, i], ys[r, j])
            v10[r, i] += value / n
            v01[r, j] += value / m
    auc = v10.mean(axis=1)
    s10, s01 = np.zeros((k, k)), np.zeros((k, k))
    for r, s in itertools.product(range(k), range(k)):
        s10[r, s] = sum((v10[r, i] - auc[r]) * (v10[s, i] - auc[s]) for i in range(m)) / (m - 1)
        s01[r, s] = sum((v01[r, j] - auc[r]) * (v01[s, j] - auc[s]) for j in range(n)) / (n - 1)
    return auc, s10 / m + s01 / n


@pytest.mark.parametrize(("seed", "m"), [(0, 2), (1, 3), (2, 3)])
def test_auc_equals_sklearn_with_ties(seed: int, m: int) -> None:
    positive, scores = _data(seed, m)
    assert len(np.unique(scores[0])) < scores.shape[1]  # the data do have ties
    auc, _ = delong_components(positive, scores)
    np.testing.assert_allclose(auc, [roc_auc_score(positive, s) for s in scores], rtol=1e-12)


@pytest.mark.parametrize(("seed", "m"), [(3, 2), (4, 3), (5, 3)])
def test_covariance_equals_the_direct_definition(seed: int, m: int) -> None:
    positive, scores = _data(seed, m)
    auc, covariance = delong_components(positive, scores)
    direct_auc, direct_covariance = _direct_delong(positive, scores)
    np.testing.assert_allclose(auc, direct_auc, rtol=1e-10)
    np.testing.assert_allclose(covariance, direct_covariance, rtol=1e-10)
    assert np.all(np.diag(covariance) > 0)


@pytest.mark.parametrize("seed", [6, 7])
def test_paired_test_equals_the_direct_computation(seed: int) -> None:
    positive, scores = _data(seed, 2)
    result = delong_test(positive, scores[0], scores[1])
    auc, cov = _direct_delong(positive, scores)
    variance = cov[0, 0] + cov[1, 1] - 2 * cov[0, 1]
    z = (auc[0] - auc[1]) / np.sqrt(variance)
    assert result.auc_a == pytest.approx(auc[0], rel=1e-12)
    assert result.auc_b == pytest.approx(auc[1], rel=1e-12)
    assert result.difference == pytest.approx(auc[0] - auc[1], rel=1e-10)
    assert result.se == pytest.approx(np.sqrt(variance), rel=1e-10)
    assert result.z == pytest.approx(z, rel=1e-10)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-10)
    half = stats.norm.ppf(0.975) * np.sqrt(variance)
    assert (result.ci_low, result.ci_high) == pytest.approx((z * result.se - half, z * result.se + half), rel=1e-10)


def test_strong_difference_is_significant_and_identical_scores_are_not() -> None:
    rng = np.random.default_rng(8)
    positive = rng.random(300) < 0.5
    good = positive + rng.normal(scale=0.5, size=300)
    noise = rng.normal(size=300)
    strong = delong_test(positive, good, noise)
    assert strong.difference > 0.3
    assert strong.p_value < 0.001
    assert strong.ci_low > 0
    same = delong_test(positive, good, good)
    assert (same.difference, same.se, same.z, same.p_value) == (0.0, 0.0, 0.0, 1.0)
    monotone = delong_test(positive, good, np.exp(good))  # the same ranking, so the same AUROC
    assert monotone.p_value == 1.0


def test_perfect_against_constant_has_no_defined_p_value() -> None:
    positive = np.array([True, True, False, False])
    result = delong_test(positive, np.array([0.9, 0.8, 0.2, 0.1]), np.full(4, 0.5))
    assert (result.auc_a, result.auc_b, result.se) == (1.0, 0.5, 0.0)
    assert np.isnan(result.p_value) and np.isnan(result.z)


def test_interval_of_one_auroc() -> None:
    positive, scores = _data(9, 1)
    auc, se, low, high = delong_interval(positive, scores[0])
    direct_auc, direct_cov = _direct_delong(positive, scores)
    assert auc == pytest.approx(direct_auc[0], rel=1e-12)
    assert se == pytest.approx(np.sqrt(direct_cov[0, 0]), rel=1e-10)
    assert (low, high) == pytest.approx((auc - 1.959964 * se, auc + 1.959964 * se), rel=1e-6)
    _, _, low, high = delong_interval(np.array([1, 1, 1, 0, 0, 0]), np.array([0.9, 0.8, 0.35, 0.4, 0.2, 0.1]))
    assert high == 1.0 and low < 1.0


@pytest.mark.parametrize(
    ("positive", "a", "b", "message"),
    [
        (np.ones(5, bool), np.arange(5.0), np.arange(5.0), "negatives"),
        (np.zeros(5, bool), np.arange(5.0), np.arange(5.0), "positives"),
        (np.array([1, 1, 0, 0], bool), np.arange(4.0), np.arange(3.0), "same rows"),
        (np.array([1, 1, 0, 0], bool), np.array([0.1, np.nan, 0.3, 0.4]), np.arange(4.0), "NaN"),
    ],
)
def test_bad_input_raises(positive: np.ndarray, a: np.ndarray, b: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        delong_test(positive, a, b)
