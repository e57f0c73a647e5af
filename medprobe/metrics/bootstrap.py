"""95 % confidence intervals by bootstrap over subjects, vectorised.

A resample draws subjects with replacement (as many as there are) and keeps all rows of every drawn subject, so
rows of one patient stay together and the interval reflects the number of patients, not images. Resample b is a
column of weights (how often each row's subject was drawn); all resamples are scored at once by the weighted metrics
of `medprobe.metrics.weighted`, in chunks to bound memory. The interval is the 2.5th and 97.5th percentiles of
the resampled values (percentile bootstrap); resamples where a metric is undefined (NaN) are left out of its
interval, and a metric that overflows to infinity in any resample gets no interval, with a note.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from medprobe.metrics.catalogue import CI_HIGH, CI_LOW, SE, ci_high, ci_low, standard_error
from medprobe.options import N_RESAMPLES

#: Keys beside a metric that describe its uncertainty, not a metric of their own: `<name>_ci_low`,
#: `<name>_ci_high` (the 95 % interval) and `<name>_se` (the bootstrap standard error, what pooling across sites
#: weighs each site by).
INTERVAL_SUFFIXES = (CI_LOW, CI_HIGH, SE)
LEVEL = 0.95
_CHUNK_ELEMENTS = 1 << 23  # weights held at once

Scorer = Callable[[np.ndarray], dict[str, np.ndarray]]


def subject_resamples(subjects: np.ndarray, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(subject code of each row (n,), numbered by first appearance; drawn subject codes (n_resamples,
    n_subjects)); fixed by `seed`."""
    # Numbered by first appearance, not sorted: sorted pseudonyms would tie the resamples to the site's salt.
    codes = pd.factorize(np.asarray(subjects).astype(str))[0]
    n_subjects = int(codes.max()) + 1 if len(codes) else 0
    drawn = np.random.default_rng([seed, 0xB007]).integers(0, max(n_subjects, 1), size=(n_resamples, n_subjects))
    return codes, drawn


def resample_weights(codes: np.ndarray, drawn: np.ndarray) -> np.ndarray:
    """(n, B) weights: how many times each row's subject was drawn in each resample (float32: exact counts)."""
    B, S = drawn.shape
    counts = np.bincount((drawn * B + np.arange(B)[:, None]).ravel(), minlength=S * B).reshape(S, B)
    return counts.astype(np.float32)[codes]


def is_interval_key(name: str) -> bool:
    return name.endswith(INTERVAL_SUFFIXES)


def bootstrap_values(scorer: Scorer, subjects: np.ndarray, n_resamples: int = N_RESAMPLES, seed: int = 0
                     ) -> dict[str, np.ndarray]:
    """Every value `scorer(W)` returns, for each of `n_resamples` subject resamples: name → (n_resamples,). The
    resamples depend only on `subjects` (their order of first appearance) and `seed`, so two scorers on the same rows
    see the same resamples: what a paired comparison needs."""
    codes, drawn = subject_resamples(subjects, n_resamples, seed)
    chunk = max(1, _CHUNK_ELEMENTS // max(len(codes), 1))
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, n_resamples, chunk):
        for name, values in scorer(resample_weights(codes, drawn[start : start + chunk])).items():
            parts.setdefault(name, []).append(values)
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def bootstrap_intervals(
    scorer: Scorer,
    subjects: np.ndarray,
    n_resamples: int = N_RESAMPLES,
    seed: int = 0,
    level: float = LEVEL,
) -> tuple[dict[str, tuple[float, float, float]], list[str]]:
    """(low, high, standard error) per metric that `scorer(W)` returns: the percentile interval and the standard
    deviation of the resampled values; notes for metrics undefined in many resamples."""
    if n_resamples < 1 or len(subjects) == 0:
        return {}, []
    if len(np.unique(np.asarray(subjects).astype(str))) < 2:
        return {}, ["a single test subject: no bootstrap confidence intervals"]
    intervals, notes, sparse = {}, [], []
    for name, values in bootstrap_values(scorer, subjects, n_resamples, seed).items():
        overflowed = int(np.isinf(values).sum())
        if overflowed:
            notes.append(f"no bootstrap interval for {name}: infinite (overflowed) in {overflowed} of "
                         f"{n_resamples} resamples")
            continue
        finite = defined_resamples(values, n_resamples)
        if finite is None:
            sparse.append(name)
            continue
        if len(finite) < n_resamples:
            notes.append(f"{name}: interval from the {len(finite)} of {n_resamples} resamples where it is defined")
        low, high = percentile_interval(finite, level)
        intervals[name] = (low, high, float(np.std(finite, ddof=1)))
    if sparse:
        notes.append(f"no bootstrap interval for {', '.join(sparse)}: undefined in most resamples")
    return intervals, notes


def defined_resamples(values: np.ndarray, n_resamples: int) -> np.ndarray | None:
    """The resampled values where the metric is defined, or None when it is undefined in most resamples (then no
    interval is given: one from a minority of resamples would describe another population) or infinite in any (an
    overflow, not an undefined metric: leaving those resamples out would cut off the interval's upper tail)."""
    if np.isinf(values).any():
        return None
    finite = values[np.isfinite(values)]
    return finite if len(finite) >= 0.5 * n_resamples else None


def percentile_interval(values: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """The percentile bootstrap interval of the resampled `values` (finite ones)."""
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def with_intervals(metrics: dict[str, float], intervals: dict[str, tuple[float, float, float]]
                   ) -> dict[str, float]:
    """`metrics` plus `<name>_ci_low`, `<name>_ci_high` and `<name>_se` for every metric that has an interval."""
    out = dict(metrics)
    for name, (low, high, se) in intervals.items():
        if name in metrics:
            out[ci_low(name)], out[ci_high(name)], out[standard_error(name)] = low, high, se
    return out
