"""Holm's adjustment equals statsmodels' `multipletests(method="holm")`."""

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from medprobe.metrics.multiplicity import holm


@pytest.mark.parametrize("seed", range(5))
def test_equals_statsmodels(seed: int) -> None:
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 30))
    p = [rng.random(size) ** 3, 1 - rng.random(size) * 1e-3, np.round(rng.random(size), 1)][seed % 3]
    p[: size // 3] = p[0]  # ties
    rng.shuffle(p)
    np.testing.assert_allclose(holm(p), multipletests(p, method="holm")[1], rtol=0, atol=1e-15)
    np.testing.assert_allclose(holm(list(p)), holm(p))


def test_known_values() -> None:
    np.testing.assert_allclose(holm([0.01, 0.04, 0.03, 0.5]), [0.04, 0.09, 0.09, 0.5])
    np.testing.assert_array_equal(holm([0.6, 0.9]), [1.0, 1.0])


def test_nan_stays_nan_and_is_not_counted() -> None:
    p = np.array([0.02, np.nan, 0.01, 0.3, np.nan, 0.04])
    adjusted = holm(p)
    tested = ~np.isnan(p)
    np.testing.assert_array_equal(np.isnan(adjusted), ~tested)
    np.testing.assert_allclose(adjusted[tested], multipletests(p[tested], method="holm")[1])
    assert np.isnan(holm([np.nan])).all()


def test_empty_input() -> None:
    adjusted = holm([])
    assert adjusted.shape == (0,)
    assert adjusted.dtype == np.float64


@pytest.mark.parametrize("p", [[0.1, 1.5], [-0.1], [[0.1, 0.2]]])
def test_bad_input_raises(p: list) -> None:
    with pytest.raises(ValueError):
        holm(p)
