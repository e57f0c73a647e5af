"""Adjusting p-values for multiple comparisons.

Comparing models on many sites or tasks at once finds some "significant" difference by chance alone. Holm's
step-down procedure (Holm 1979) bounds the family-wise error rate under any dependence between the tests, as
Bonferroni does, and rejects at least as often.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values, in the order given (equal to statsmodels' `multipletests(method="holm")`).

    The family is exactly what the caller passes: adjust all comparisons of one question together, not one at a
    time. NaN entries (tests that could not be run) stay NaN and do not count towards the family size.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.ndim != 1:
        raise ValueError(f"holm takes a one-dimensional family of p-values, got shape {p.shape}")
    tested = ~np.isnan(p)
    family = p[tested]
    if np.any((family < 0) | (family > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    order = np.argsort(family, kind="stable")
    # The i-th smallest of k is multiplied by k - i + 1; the running maximum keeps the adjusted values monotone.
    stepped = np.minimum(np.maximum.accumulate(family[order] * np.arange(len(family), 0, -1)), 1.0)
    adjusted = np.full_like(p, np.nan)
    adjusted[np.flatnonzero(tested)[order]] = stepped
    return adjusted
