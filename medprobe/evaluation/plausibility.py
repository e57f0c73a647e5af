"""Plausibility checks on a result: numbers that are computed correctly but mean something else than they seem.

Each check gives a flag (a fixed short name, logged as the run's `medprobe.flags` tag and shown beside the number in
`medprobe compare` and its report) and a note with the figures (printed with the job's table and in `notes.txt`):

- `constant`: every test sample got the same class (or the same value, for regression) — the head
  ignores its input, whatever the metric says;
- `out of range`: regression predictions further than `SPREADS` standard deviations from the training
  labels' mean (a plausible range stated from aggregates only, so a published head can carry it: by Chebyshev's
  inequality at most 1/16 of any training labels lie beyond it);
- `below chance`: AUROC below 0.5 with its whole 95 % interval below it — systematically inverted, which on real
  data usually means a label coding that differs between training and test, not a weak model;
- `wide CI`: a 95 % interval as wide as the range the metric can take, or wider (1 for
  proportions, 2 for kappa and correlations, the training labels' plausible range for MAE and RMSE) — the test set
  is too small to say anything about this metric;
- `R² gap` (subgroups): an R² gap beyond [−1, 1], where a small group's own variance makes its R²
  meaningless; read its MAE instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medprobe.metrics.catalogue import PROPORTIONS, ci_high, ci_low
from medprobe.metrics.display import finite

SPREADS = 4.0
CONSTANT = "constant"
OUTSIDE_RANGE = "out of range"
BELOW_CHANCE = "below chance"
WIDE_INTERVAL = "wide CI"
GAP_OUTSIDE = "R² gap"
#: Every flag, in the order they are shown.
FLAGS = (CONSTANT, OUTSIDE_RANGE, BELOW_CHANCE, WIDE_INTERVAL, GAP_OUTSIDE)
#: Metrics whose range is [-1, 1].
SIGNED_UNIT = frozenset({"kappa", "kappa_quadratic", "pearson_r"})
#: Metrics in the labels' units: their range is the training labels' plausible range.
LABEL_UNITS = frozenset({"mae", "rmse"})


@dataclass(frozen=True)
class Finding:
    flag: str  # one of FLAGS
    note: str


@dataclass(frozen=True)
class LabelScale:
    """The training labels of a regression task as aggregates: their mean and standard deviation."""

    mean: float
    std: float

    @classmethod
    def of(cls, labels: np.ndarray) -> LabelScale | None:
        values = np.asarray(labels, dtype=np.float64)
        values = values[np.isfinite(values)]
        return cls(float(values.mean()), float(values.std())) if len(values) >= 2 else None

    @property
    def plausible(self) -> tuple[float, float]:
        return self.mean - SPREADS * self.std, self.mean + SPREADS * self.std


def result_findings(metrics: Mapping[str, float], predictions: pd.DataFrame, task_type: str,
                    scale: LabelScale | None) -> list[Finding]:
    """The findings on one result: its top-level `metrics` (with their `_ci_low`/`_ci_high`), its per-sample
    `predictions` (`y_pred`, and `proba_<class>` columns for classification; may be empty) and, for regression,
    the training labels' `scale`."""
    findings = _prediction_findings(predictions, task_type, scale)
    auroc_high = metrics.get(ci_high("auroc"))
    if finite(auroc_high) and auroc_high < 0.5:
        findings.append(Finding(BELOW_CHANCE, (
            f"AUROC {metrics['auroc']:.3f} with its 95 % interval [{metrics[ci_low('auroc')]:.3f}, "
            f"{auroc_high:.3f}] below 0.5: the scores are systematically inverted; check that the label coding is "
            "the same where the head was trained and where it was tested (zero-shot: that each class's prompts "
            "describe that class)")))
    wide = [name for name in metrics if _interval_wider_than_range(metrics, name, scale)]
    if wide:
        findings.append(Finding(WIDE_INTERVAL, (
            f"the 95 % interval of {', '.join(wide)} is wider than the metric's range: too few test subjects to "
            "say anything about it")))
    return findings


def gap_finding(metric: str, gap: object) -> Finding | None:
    """A subgroup gap of R² outside [-1, 1]."""
    if metric == "r2" and finite(gap) and abs(gap) > 1:
        return Finding(GAP_OUTSIDE, (
            f"R² gap {gap:.3g} outside [-1, 1]: a group whose own labels barely vary has an R² far below 0 whatever "
            "the errors; compare the groups' MAE instead"))
    return None


def flags_text(findings: list[Finding]) -> str:
    """The flags of `findings`, in `FLAGS` order, '; '-joined (the `medprobe.flags` tag)."""
    present = {finding.flag for finding in findings}
    return "; ".join(flag for flag in FLAGS if flag in present)


def _prediction_findings(predictions: pd.DataFrame, task_type: str, scale: LabelScale | None) -> list[Finding]:
    if "y_pred" not in predictions.columns or len(predictions) < 2:
        return []
    predicted = predictions["y_pred"].to_numpy()
    findings = []
    if task_type == "classification":
        if len(pd.unique(predicted)) == 1:
            proba = predictions[[c for c in predictions.columns if str(c).startswith("proba_")]].to_numpy(float)
            top = f", with probability {np.median(proba.max(axis=1)):.3f} (median)" if proba.size else ""
            findings.append(Finding(CONSTANT, (
                f"every one of the {len(predicted)} test samples was predicted as class {predicted[0]}{top}: the "
                "head ignores its input here")))
        return findings
    values = predicted.astype(np.float64)
    if np.ptp(values) <= 1e-9 * max(1.0, float(np.abs(values).max())):
        findings.append(Finding(CONSTANT, (
            f"every one of the {len(values)} test samples was predicted {values[0]:.4g}: the head ignores its "
            "input here")))
    if scale is not None:
        low, high = scale.plausible
        outside = (values < low) | (values > high)
        if outside.any():
            findings.append(Finding(OUTSIDE_RANGE, (
                f"{int(outside.sum())} of {len(values)} predictions (range {values.min():.4g} to {values.max():.4g}) "
                f"lie outside the training labels' mean ± {SPREADS:g} SD ({low:.4g} to {high:.4g}): the head "
                "extrapolates far beyond what it was trained on")))
    return findings


def _interval_wider_than_range(metrics: Mapping[str, float], name: str, scale: LabelScale | None) -> bool:
    low, high = metrics.get(ci_low(name)), metrics.get(ci_high(name))
    if not (finite(low) and finite(high)):
        return False
    if name in PROPORTIONS:
        span = 1.0
    elif name in SIGNED_UNIT:
        span = 2.0
    elif name in LABEL_UNITS and scale is not None:
        span = 2 * SPREADS * scale.std
    else:
        return False
    return high - low >= span
