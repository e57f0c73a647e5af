"""Nearest-centroid (SimpleShot CL2N) head from pooled class sums.

Features are centred on the pooled training mean and L2-normalised; a class centroid is the L2-normalised mean of
its normalised training rows; a row goes to the centroid with the largest cosine. Sites send per-class sums of
their normalised rows and counts, so the centroids equal those computed on the pooled rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medprobe.federated.statistics import ClassSums

#: Softmax temperature that turns cosines into scores for AUROC; ranks and the predicted class do not depend on it.
TEMPERATURE = 0.1


def cl2n(X: np.ndarray, mean: np.ndarray | float) -> np.ndarray:
    """Centre on `mean` and L2-normalise (an all-zero row stays zero); float64."""
    centred = np.asarray(X, dtype=np.float64) - mean
    return centred / np.maximum(np.linalg.norm(centred, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class CentroidHead:
    mean: np.ndarray  # (d,)
    centroids: np.ndarray  # (C, d), unit rows (zero for a class with no training rows)

    @classmethod
    def from_sums(cls, mean: np.ndarray, sums: ClassSums) -> CentroidHead:
        means = sums.sums / np.maximum(sums.counts, 1)[:, None]
        return cls(np.asarray(mean, dtype=np.float64), cl2n(means, 0.0))

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        scores = cl2n(X, self.mean) @ self.centroids.T / TEMPERATURE
        scores -= scores.max(axis=1, keepdims=True)
        exp = np.exp(scores)
        return exp / exp.sum(axis=1, keepdims=True)
