"""Intensity percentiles are exact: the tail shortcut must give np.percentile's numbers."""

import numpy as np
import pytest

from medprobe.io import MedicalImage
from medprobe.preprocess.intensity import IntensityStep, exact_percentiles
from medprobe.preprocess.options import PercentileIntensity, RangeIntensity, ZScoreIntensity

RNG = np.random.default_rng(7)
ARRAYS = {
    "tiny": RNG.normal(size=3).astype(np.float32),
    "normal": RNG.normal(300, 100, 300_001).astype(np.float32),
    "integer_ties": RNG.integers(0, 6, 200_000).astype(np.float32),
    "mostly_background": np.r_[np.zeros(900_000), RNG.random(100_000) * 900].astype(np.float32),
    "skewed": RNG.exponential(size=500_000).astype(np.float32),
    "constant": np.full(100_000, 4.0, np.float32),
}


@pytest.mark.parametrize("name", sorted(ARRAYS))
@pytest.mark.parametrize("percents", [(0.5, 99.5), (0.0, 100.0), (2.0, 98.0), (0.001, 99.999), (25.0, 75.0)])
def test_exact_percentiles_equal_numpy(name: str, percents: tuple[float, float]) -> None:
    values = ARRAYS[name]
    assert exact_percentiles(values, percents) == list(np.percentile(values, percents))


@pytest.mark.parametrize("option", [PercentileIntensity(), ZScoreIntensity(lower=1, upper=99), RangeIntensity()])
def test_intensity_does_not_depend_on_memory_layout(option: object) -> None:
    volume = RNG.normal(100, 20, (1, 40, 30, 20)).astype(np.float32)
    flipped_fortran = np.asfortranarray(volume[:, ::-1])[:, ::-1]  # same values, F order
    step = IntensityStep(option)
    a = step(MedicalImage(volume, np.eye(4))).array
    b = step(MedicalImage(flipped_fortran, np.eye(4))).array
    np.testing.assert_array_equal(a, b)


def test_percentile_scaling_uses_numpys_percentiles() -> None:
    volume = RNG.normal(100, 20, (1, 64, 64, 40)).astype(np.float32)
    out = IntensityStep(PercentileIntensity(lower=1, upper=99))(MedicalImage(volume, np.eye(4))).array
    low, high = np.percentile(volume, [1, 99]).astype(np.float32)
    expected = np.clip((volume - low) / (high - low), 0, 1)
    np.testing.assert_array_equal(out, expected)
