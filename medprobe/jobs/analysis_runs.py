"""How a protocol run logs its subgroup metrics and label-efficiency curve, so sites line up in the MLflow UI and
`medprobe compare` can read them back:

- `subgroup/<attribute>/<group>/<metric>` with `_ci_low` / `_ci_high`, and `.../n_subjects`;
- `subgroup_gap/<attribute>/<metric>` (best − worst group, positive; for MAE/RMSE worst − best) with its interval,
  and the parameters `subgroup_gap/<attribute>/best_group/<metric>`, `.../worst_group/<metric>`;
- the parameter `subgroup/<attribute>/too_small`: how many groups were too small to score (their names and sizes
  stay in the site's `subgroups.csv`: a small cell can point at a patient);
- `label_efficiency/pct_<percent>/<metric>` with `_ci_low` / `_ci_high` and `.../n_subjects` (linear protocol).

Attribute and group names become key segments through `medprobe.tracking.naming.key_part`; the prefixes are in
`medprobe.tracking.naming`.
"""

from __future__ import annotations

import math

import pandas as pd

from medprobe.evaluation.subgroups import SCORED, TOO_SMALL, SubgroupResult
from medprobe.evaluation.suite import EvaluationResult
from medprobe.metrics.catalogue import ci_high, ci_low
from medprobe.tracking.naming import GAP_PREFIX, LABEL_EFFICIENCY_PREFIX, SUBGROUP_PREFIX, key_part, percent_key


def analysis_run_values(outcome: EvaluationResult, protocol: str) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, params) of `protocol`'s analyses to log on its run; empty when none ran."""
    metrics: dict[str, float] = {}
    params: dict[str, str] = {}
    subgroups = outcome.subgroups.get(protocol)
    if subgroups is not None:
        _subgroup_values(subgroups, metrics, params)
    if protocol == "linear" and outcome.label_efficiency is not None:
        metrics |= _curve_values(outcome.label_efficiency.frame)
    return {k: v for k, v in metrics.items() if math.isfinite(v)}, params


def _subgroup_values(result: SubgroupResult, metrics: dict[str, float], params: dict[str, str]) -> None:
    for row in result.groups.itertuples():
        key = f"{SUBGROUP_PREFIX}{key_part(row.attribute)}/{key_part(row.group)}"
        if row.status == TOO_SMALL:
            continue  # neither its name nor its size leaves the site: a small cell can point at a patient
        metrics[f"{key}/n_subjects"] = float(row.n_subjects)
        if row.status == SCORED:
            metrics[f"{key}/{row.metric}"] = row.value
            metrics[ci_low(f"{key}/{row.metric}")] = row.ci_low
            metrics[ci_high(f"{key}/{row.metric}")] = row.ci_high
    for row in result.gaps.itertuples():
        key = f"{GAP_PREFIX}{key_part(row.attribute)}"
        metrics[f"{key}/{row.metric}"] = row.gap
        metrics[ci_low(f"{key}/{row.metric}")] = row.gap_ci_low
        metrics[ci_high(f"{key}/{row.metric}")] = row.gap_ci_high
        params[f"{key}/best_group/{row.metric}"] = key_part(row.best_group)
        params[f"{key}/worst_group/{row.metric}"] = key_part(row.worst_group)
    small = result.groups[result.groups["status"] == TOO_SMALL].drop_duplicates(["attribute", "group"])
    for attribute, rows in small.groupby("attribute"):
        params[f"{SUBGROUP_PREFIX}{key_part(str(attribute))}/too_small"] = (
            f"{len(rows)} group(s) under min_subjects; named in the site's subgroups.csv")


def _curve_values(frame: pd.DataFrame) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for row in frame.itertuples():
        key = f"{LABEL_EFFICIENCY_PREFIX}{percent_key(row.percent)}"
        metrics[f"{key}/n_subjects"] = float(row.n_subjects)
        metrics[f"{key}/{row.metric}"] = row.value
        metrics[ci_low(f"{key}/{row.metric}")] = row.ci_low
        metrics[ci_high(f"{key}/{row.metric}")] = row.ci_high
    return metrics
