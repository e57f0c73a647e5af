"""Subgroup metrics: does the model work equally for women and men, old and young, each scanner?

For each attribute (a manifest column, numeric ones cut into bins) every group of the test rows is scored with the
protocol's own metrics and a subject-bootstrap 95 % interval. The resamples draw from all test subjects at once, so
a group's size varies between resamples as it would in a new sample of patients. A group with fewer than
`min_subjects` subjects is listed as too small and not scored; a metric undefined in a group (AUROC in a group of one
class) is listed as undefined. Per attribute and metric, the best and the worst scored groups (by point estimate)
give the gap, with a percentile interval of the same two groups' difference over the resamples: the interval is
conditional on which groups came out best and worst, so with many small groups the gap itself is biased upwards.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medprobe.evaluation.options import SubgroupOptions
from medprobe.evaluation.plausibility import gap_finding
from medprobe.evaluation.scorers import ScoredPredictions
from medprobe.metrics.bootstrap import bootstrap_values, defined_resamples, percentile_interval
from medprobe.metrics.catalogue import ANALYSIS, better, ci_high, ci_low

#: `subgroups.csv`: one row per attribute × group × metric; `status` is scored, too small, or undefined.
GROUP_COLUMNS = ("attribute", "group", "metric", "n_subjects", "n_samples", "value", "ci_low", "ci_high", "status")
#: `subgroup_gaps.csv`: one row per attribute × metric with two or more scored groups.
GAP_COLUMNS = ("attribute", "metric", "best_group", "worst_group", "best_value", "worst_value", "gap", ci_low("gap"),
               ci_high("gap"), "groups_scored")
SCORED, TOO_SMALL, UNDEFINED = "scored", "too small", "undefined"


@dataclass
class SubgroupResult:
    groups: pd.DataFrame
    gaps: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def group_labels(values: pd.Series, edges: list[float] | None = None) -> pd.Series:
    """The group of each row as text ("F", "site-2", "40-60"); missing values and values outside `edges` are NA.
    Bins are left-closed, right-open: `edges` [0, 40, 60] give "0-40" and "40-60"."""
    if edges is None:
        text = values.astype("string").str.strip()
        return text.mask(text == "")
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    names = [f"{low:g}-{high:g}" for low, high in itertools.pairwise(edges)]
    index = np.searchsorted(np.asarray(edges), numbers, side="right") - 1
    inside = np.isfinite(numbers) & (index >= 0) & (index < len(names))
    return pd.Series([names[i] if ok else pd.NA for i, ok in zip(index, inside, strict=True)], index=values.index,
                     dtype="string")


def subgroup_metrics(predictions: pd.DataFrame, frame: pd.DataFrame, task_type: str, options: SubgroupOptions,
                     seed: int = 0) -> SubgroupResult:
    """Per-group metrics and gaps of one protocol's `predictions` (their `row` indexes `frame`, the rows the task
    used, which hold the attribute columns). One set of resamples serves every attribute."""
    scored = ScoredPredictions.of(predictions, task_type)
    positions = predictions["row"].to_numpy()
    metrics = ANALYSIS[task_type]
    notes: list[str] = []
    masks: dict[str, dict[str, np.ndarray]] = {}
    for attribute in options.attributes:
        if attribute not in frame.columns:
            notes.append(f"subgroups: no column {attribute!r} in the table; left out")
            continue
        labels = group_labels(frame[attribute].iloc[positions].reset_index(drop=True), options.bins.get(attribute))
        missing = int(labels.isna().sum())
        if missing:
            notes.append(f"subgroups: {missing} test row(s) have no {attribute!r} group (missing or outside the bins)")
        masks[attribute] = {group: (labels == group).fillna(False).to_numpy(bool)
                            for group in sorted(labels.dropna().unique().tolist())}
    sizes = {(a, g): len(np.unique(scored.subjects[mask])) for a, groups in masks.items() for g, mask in groups.items()}
    rows = {key: np.flatnonzero(masks[key[0]][key[1]]) for key, size in sizes.items() if size >= options.min_subjects}
    point = {key: scored.take(taken).point(metrics) for key, taken in rows.items()}
    resampled = _resampled(scored, rows, metrics, options.bootstrap, seed)
    group_rows = [_group_row(key, metric, sizes[key], int(masks[key[0]][key[1]].sum()), point.get(key),
                             resampled.get((*key, metric)), options.bootstrap)
                  for key in sizes for metric in metrics]
    gap_rows = [gap for attribute in masks for metric in metrics
                if (gap := _gap(attribute, metric, point, resampled, options.bootstrap))]
    notes += [f"subgroups by {gap['attribute']}: {finding.note}" for gap in gap_rows
              if (finding := gap_finding(str(gap["metric"]), gap["gap"]))]
    return SubgroupResult(pd.DataFrame(group_rows, columns=list(GROUP_COLUMNS)),
                          pd.DataFrame(gap_rows, columns=list(GAP_COLUMNS)), notes)


def _group_row(key: tuple[str, str], metric: str, n_subjects: int, n_samples: int, point: dict[str, float] | None,
               resampled: np.ndarray | None, n_resamples: int) -> dict[str, object]:
    value = point[metric] if point is not None else np.nan
    status = SCORED if np.isfinite(value) else (UNDEFINED if point is not None else TOO_SMALL)
    low, high = _interval(resampled, n_resamples) if status == SCORED else (np.nan, np.nan)
    return {"attribute": key[0], "group": key[1], "metric": metric, "n_subjects": n_subjects,
            "n_samples": n_samples, "value": value, "ci_low": low, "ci_high": high, "status": status}


def _resampled(scored: ScoredPredictions, rows: dict[tuple[str, str], np.ndarray], metrics: tuple[str, ...],
               n_resamples: int, seed: int) -> dict[tuple[str, str, str], np.ndarray]:
    """(attribute, group, metric) → the metric on the group's rows of each subject resample of all test rows."""
    if n_resamples < 1 or not rows or len(np.unique(scored.subjects)) < 2:
        return {}
    keys = list(rows)
    scorers = [scored.take(rows[key]).scorer(metrics) for key in keys]

    def per_group(W: np.ndarray) -> dict[str, np.ndarray]:
        out = {}
        for number, key in enumerate(keys):  # a group's rows only: the others would have weight 0
            for metric, values in scorers[number](W[rows[key]]).items():
                out[f"{number}/{metric}"] = values
        return out
    values = bootstrap_values(per_group, scored.subjects, n_resamples, seed)
    return {(*keys[int(name.split("/")[0])], name.split("/", 1)[1]): v for name, v in values.items()}


def ends(values: dict[str, float], sign: float) -> tuple[str, str]:
    """(worst, best) group: the two ends of one ordering, so they differ even when every value ties."""
    ordered = sorted(values, key=lambda group: sign * values[group])
    return ordered[0], ordered[-1]


def _interval(values: np.ndarray | None, n_resamples: int) -> tuple[float, float]:
    if values is None:
        return np.nan, np.nan
    finite = defined_resamples(values, n_resamples)
    return percentile_interval(finite) if finite is not None else (np.nan, np.nan)


def _gap(attribute: str, metric: str, point: dict[tuple[str, str], dict[str, float]],
         resampled: dict[tuple[str, str, str], np.ndarray], n_resamples: int) -> dict[str, object] | None:
    values = {group: metrics[metric] for (a, group), metrics in point.items()
              if a == attribute and np.isfinite(metrics[metric])}
    if len(values) < 2:
        return None
    sign = better(metric)
    worst, best = ends(values, sign)
    low = high = np.nan
    if (attribute, best, metric) in resampled and (attribute, worst, metric) in resampled:
        difference = resampled[attribute, best, metric] - resampled[attribute, worst, metric]
        low, high = _interval(sign * difference, n_resamples)
    return {"attribute": attribute, "metric": metric, "best_group": best, "worst_group": worst,
            "best_value": values[best], "worst_value": values[worst], "gap": sign * (values[best] - values[worst]),
            ci_low("gap"): low, ci_high("gap"): high, "groups_scored": len(values)}
