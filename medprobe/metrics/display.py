"""How a metric is written wherever people read it (terminal tables, the HTML report, `comparison.csv`): the value
with its 95 % interval in one cell, so that no side-by-side number appears without its uncertainty."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TypeGuard

from medprobe.metrics.catalogue import ci_high, ci_low

MISSING = "–"


def with_interval(value: float | None, low: float | None = None, high: float | None = None) -> str:
    """`0.950 [0.900, 0.990]`; the value alone when it has no interval; '–' when there is no value."""
    if not finite(value):
        return MISSING
    if not (finite(low) and finite(high)):
        return f"{value:.3f}"
    return f"{value:.3f} {interval(low, high)}"


def interval(low: float | None, high: float | None) -> str:
    """`[0.900, 0.990]`, or '–' when either bound is missing."""
    return f"[{low:.3f}, {high:.3f}]" if finite(low) and finite(high) else MISSING


def metric_with_interval(metrics: Mapping[str, float], name: str) -> str:
    """`with_interval` of metric `name` read with its bounds from a flat metrics mapping."""
    return with_interval(metrics.get(name), metrics.get(ci_low(name)), metrics.get(ci_high(name)))


def flag_mark(flags: object) -> str:
    """`! constant; wide CI` for a result's plausibility flags ('; '-joined text or a list of names), '' without
    any (an empty value, or a missing cell of a table)."""
    text = flags if isinstance(flags, str) else "; ".join(flags) if isinstance(flags, list | tuple) else ""
    return f"! {text}" if text else ""


def with_flags(text: str, flags: object) -> str:
    """`text` followed by its flag mark, when there is one."""
    mark = flag_mark(flags)
    return f"{text} {mark}" if mark else text


def count(value: float | None) -> str:
    """A subject count, or '–' when unknown."""
    return f"{value:.0f}" if finite(value) else MISSING


def finite(value: object) -> TypeGuard[float]:
    """True for a finite number of any numeric type (numpy's included)."""
    try:
        return value is not None and math.isfinite(float(value))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
