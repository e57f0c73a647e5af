"""Intensity steps by modality: MRI percentiles or z-score, CT windows, photographs by stored range."""

from __future__ import annotations

from typing import Any

import numpy as np

from medprobe.io.image import MedicalImage
from medprobe.preprocess.options import (
    CTWindowIntensity,
    NoIntensity,
    PercentileIntensity,
    RangeIntensity,
    ZScoreIntensity,
)

IntensityOption = PercentileIntensity | ZScoreIntensity | CTWindowIntensity | RangeIntensity | NoIntensity


class IntensityStep:
    """Map physical values to the range the encoder was trained on (0–1 for every mode but z-score).

    NaN voxels are set to the image minimum first, so a partly corrupt volume still embeds; a volume that is
    entirely NaN never reaches this step (the readers refuse it).
    """

    def __init__(self, option: IntensityOption) -> None:
        self.option = option

    def __call__(self, image: MedicalImage, source: str = "image") -> MedicalImage:
        array = image.array
        if np.isnan(array).any():
            array = np.where(np.isnan(array), np.nanmin(array), array)
        scaled = self._scale(array, image.nominal_range).astype(np.float32, copy=False)
        return MedicalImage(scaled, image.affine, image.modality, None, image.metadata)

    def _scale(self, array: np.ndarray, nominal: tuple[float, float] | None) -> np.ndarray:
        option = self.option
        if isinstance(option, PercentileIntensity):
            low, high = _channel_percentiles(array, option.lower, option.upper)
            return _unit(array, low, high)
        if isinstance(option, ZScoreIntensity):
            low, high = _channel_percentiles(array, option.lower, option.upper)
            clipped = np.clip(array, low, high)
            return _zscore(clipped, option.statistics)
        if isinstance(option, CTWindowIntensity):
            window = option.bounds()
            return _unit(array, np.float32(window[0]), np.float32(window[1]))
        if isinstance(option, RangeIntensity):
            if nominal is not None:
                return _unit(array, np.float32(nominal[0]), np.float32(nominal[1]))
            low, high = _channel_percentiles(array, 0.0, 100.0)
            return _unit(array, low, high)
        return array

    def describe(self) -> dict[str, Any]:
        return {"step": "intensity", **self.option.model_dump(mode="json")}


def _channel_percentiles(array: np.ndarray, lower: float, upper: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel `np.percentile(..., [lower, upper])` (method "linear"), exactly, as (C, 1, ...) float32."""
    bounds = np.array([exact_percentiles(channel.ravel(order="K"), (lower, upper)) for channel in array])
    shape = (array.shape[0],) + (1,) * (array.ndim - 1)
    return bounds[:, 0].reshape(shape).astype(np.float32), bounds[:, 1].reshape(shape).astype(np.float32)


def exact_percentiles(values: np.ndarray, percents: tuple[float, ...]) -> list[float]:
    """`np.percentile(values, percents)` with the same result, without partitioning the whole array.

    Intensity percentiles sit in the tails (0.5 and 99.5 by default). A strided subsample suggests a threshold;
    the values beyond it are then counted exactly, and only they are partitioned. The count proves the
    threshold safe (every value outside the candidates lies beyond all of them), so the answer is exact; when
    it does not (rare), or the percentile is not in a tail, the whole array is partitioned as numpy would.
    """
    n = values.size
    out = []
    for percent in percents:
        virtual = (n - 1) * (percent / 100)  # numpy's "linear" virtual index
        below = min(int(np.floor(virtual)), n - 1)
        above = min(below + 1, n - 1)
        a, b = _order_statistics(values, below, above)
        gamma = virtual - below if above > below else 0.0
        diff = float(np.float32(b) - np.float32(a))  # numpy subtracts in the array's dtype, then promotes
        out.append(b - diff * (1 - gamma) if gamma >= 0.5 else a + diff * gamma)
    return out


def _order_statistics(values: np.ndarray, first: int, second: int) -> tuple[float, float]:
    """The values of rank `first` and `second` (second = first or first + 1) in sorted order, exactly."""
    n = values.size
    tail = max(min(first, n - 1 - first), 0) + 2  # voxels on the near side, with the pair itself
    if n >= 65536 and tail * 8 <= n:
        step = max(n // 65536, 1)
        sample = values[::step]
        m = sample.size
        margin = min(m - 1, int(tail * m / n * 1.5) + 32)  # sample rank comfortably beyond the wanted one
        if first < n - 1 - first:
            threshold = np.partition(sample, margin)[margin]
            candidates = values[values <= threshold]
            offset = 0  # every other value is above all candidates
        else:
            threshold = np.partition(sample, m - 1 - margin)[m - 1 - margin]
            candidates = values[values >= threshold]
            offset = n - candidates.size  # every other value is below all candidates
        if offset <= first and second - offset < candidates.size and candidates.size * 4 <= n:
            part = np.partition(candidates, [first - offset, second - offset])
            return float(part[first - offset]), float(part[second - offset])
    part = np.partition(values, [first, second])
    return float(part[first]), float(part[second])


def _unit(array: np.ndarray, low: np.ndarray | np.float32, high: np.ndarray | np.float32) -> np.ndarray:
    span = np.maximum(high - low, np.float32(1e-6))
    out = np.subtract(array, low, dtype=np.float32)
    out /= span
    return np.clip(out, 0.0, 1.0, out=out)


def _zscore(array: np.ndarray, statistics: str) -> np.ndarray:
    """Per channel: mean and SD of the voxels != 0 ("nonzero") or > 0 ("positive"); the zeros stay 0, and with
    "nonzero" every voxel outside the mask is 0 too."""
    out = np.zeros_like(array)
    for c in range(array.shape[0]):
        channel = array[c]
        mask = channel > 0 if statistics == "positive" else channel != 0
        values = channel[mask] if mask.any() else channel.ravel()
        std = float(values.std()) or 1.0
        out[c] = np.where(channel != 0, (channel - values.mean()) / std, 0.0)
    return out
