"""The sites' analyses read back from MLflow for the comparison: paired model comparisons, subgroups (the site
itself being one more attribute) and label-efficiency curves.

- `paired_runs`: every site's paired runs (`medprobe.jobs.paired_step`), Holm-corrected again across all the
  rows of a metric in the comparison, since that is the family the report shows.
- `subgroup_tables`: the groups and gaps each site logged, plus `attribute` = `site`: each site's held-out
  metric as a group of the model × task × protocol, and the gap between the best and the worst site with a 95 %
  normal interval from the two sites' bootstrap standard errors (the sites are independent samples).
- `curve_table`: the label-efficiency points of every linear run.
- `robustness_table` and `robustness_ranking`: every site's robustness runs (metric against severity per
  artefact), and per model the clean accuracy beside the mean relative drop under the artefacts, each ranked.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from medprobe.compare.table import KEY_COLUMNS, experiment_id, main_metric
from medprobe.evaluation.paired import PAIRED_COLUMNS, holm_corrected
from medprobe.evaluation.plausibility import gap_finding
from medprobe.evaluation.subgroups import GAP_COLUMNS, GROUP_COLUMNS, SCORED, ends
from medprobe.metrics.catalogue import LOWER_IS_BETTER, better, ci_high, ci_low, standard_error
from medprobe.tracking import TrackingStore, naming
from medprobe.tracking.run_kinds import PAIRED, kind_filter

SITE_ATTRIBUTE = "site"
CURVE_COLUMNS = (*KEY_COLUMNS, "percent", "n_subjects", "metric", "value", "ci_low", "ci_high")
ROBUSTNESS_COLUMNS = ("site", "model", "task", "artefact", "severity", "metric", "value", "ci_low", "ci_high", "drop",
                      "cosine_median", "cosine_p05")
RANKING_COLUMNS = ("task", "model", "sites", "metric", "clean", "mean_relative_drop", "accuracy_rank",
                   "robustness_rank")
_Z95 = 1.959963984540054


def paired_runs(store: TrackingStore, experiment: str) -> pd.DataFrame:
    """`site` then `PAIRED_COLUMNS`, one row per site × task × protocol × pair × metric (a re-run replaces the
    earlier one)."""
    rows = []
    for run in store.results(experiment_id(store, experiment), kind_filter(PAIRED)):
        tags = run.data.tags
        by_metric: dict[str, dict[str, float]] = {}
        for key, value in run.data.metrics.items():
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == "paired":
                by_metric.setdefault(parts[1], {})[parts[2]] = value
        key = {"site": tags.get(naming.SITE, "?"), "task": tags.get(naming.TASK, "?"),
               "protocol": tags.get(naming.PROTOCOL, "?"), "model": tags.get(naming.MODEL, "?"),
               "baseline": tags.get(naming.BASELINE, "?")}
        rows += [{**key, "metric": metric, **values, "start_time": run.info.start_time}
                 for metric, values in by_metric.items()]
    if not rows:
        return pd.DataFrame(columns=["site", *PAIRED_COLUMNS])
    frame = pd.DataFrame(rows).sort_values("start_time", kind="stable")
    frame = frame.drop_duplicates(["site", "task", "protocol", "model", "baseline", "metric"], keep="last")
    frame = frame.sort_values(["task", "protocol", "model", "baseline", "metric", "site"]).reset_index(drop=True)
    corrected = holm_corrected(frame)
    return pd.concat([frame[["site"]], corrected], axis=1)


def subgroup_tables(runs: pd.DataFrame, metrics: tuple[str, ...]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(groups, gaps): `KEY_COLUMNS` then `GROUP_COLUMNS` / `GAP_COLUMNS`, for `metrics`; the site rows use
    `site` = "all"."""
    groups, gaps = [], []
    for record in runs.to_dict("records"):
        key = {column: record[column] for column in KEY_COLUMNS}
        for name, value in sorted(record.items(), key=lambda item: str(item[0])):  # "subgroup/" before "_gap/"
            if not (isinstance(name, str) and _finite(value)):
                continue
            if name.startswith(naming.SUBGROUP_PREFIX):
                attribute, group, metric = name.removeprefix(naming.SUBGROUP_PREFIX).split("/")
                if metric in metrics:
                    groups.append({**key, "attribute": attribute, "group": group, "metric": metric,
                                   "n_subjects": record.get(f"{naming.SUBGROUP_PREFIX}{attribute}/{group}/n_subjects"),
                                   "value": value, **_interval(record, name), "status": SCORED})
            elif name.startswith(naming.GAP_PREFIX):
                attribute, metric = name.removeprefix(naming.GAP_PREFIX).split("/")
                if metric in metrics:
                    low, high = _interval(record, name).values()
                    gaps.append({**key, "attribute": attribute, "metric": metric, "gap": value, ci_low("gap"): low,
                                 ci_high("gap"): high, **_extremes(groups, key, attribute, metric)})
    site_groups, site_gaps = _sites_as_groups(runs, metrics)
    group_frame = pd.DataFrame([*groups, *site_groups]).reindex(columns=[*KEY_COLUMNS, *GROUP_COLUMNS])
    gap_frame = pd.DataFrame([*gaps, *site_gaps]).reindex(columns=[*KEY_COLUMNS, *GAP_COLUMNS])
    gap_frame["flags"] = [finding.flag if (finding := gap_finding(str(metric), float(gap))) else ""
                          for metric, gap in zip(gap_frame["metric"], gap_frame["gap"], strict=True)]
    return group_frame, gap_frame


def curve_table(runs: pd.DataFrame) -> pd.DataFrame:
    """`CURVE_COLUMNS`: one row per site × model × task × protocol × share of training subjects × metric."""
    rows = []
    for record in runs.to_dict("records"):
        for name, value in record.items():
            if not (isinstance(name, str) and name.startswith(naming.LABEL_EFFICIENCY_PREFIX) and _finite(value)):
                continue
            share, metric = name.removeprefix(naming.LABEL_EFFICIENCY_PREFIX).split("/")
            if metric == "n_subjects" or metric.endswith(("_ci_low", "_ci_high")):
                continue
            rows.append({**{c: record[c] for c in KEY_COLUMNS}, "percent": float(share.removeprefix("pct_")),
                         "n_subjects": record.get(f"{naming.LABEL_EFFICIENCY_PREFIX}{share}/n_subjects"),
                         "metric": metric, "value": value, **_interval(record, name)})
    frame = pd.DataFrame(rows).reindex(columns=list(CURVE_COLUMNS))
    return frame.sort_values([*KEY_COLUMNS, "metric", "percent"]).reset_index(drop=True)


def _extremes(groups: list[dict], key: dict, attribute: str, metric: str) -> dict[str, object]:
    """The best and worst of the groups already read for this run, attribute and metric."""
    values = {g["group"]: g["value"] for g in groups
              if g["attribute"] == attribute and g["metric"] == metric and all(g[k] == v for k, v in key.items())}
    if not values:
        return {}
    worst, best = ends(values, better(metric))
    return {"best_group": best, "worst_group": worst, "best_value": values[best], "worst_value": values[worst],
            "groups_scored": len(values)}


def _sites_as_groups(runs: pd.DataFrame, metrics: tuple[str, ...]) -> tuple[list[dict], list[dict]]:
    groups, gaps = [], []
    for (model, task, protocol), rows in runs.groupby(["model", "task", "protocol"], sort=True):
        key = {"site": "all", "model": model, "task": task, "protocol": protocol, "attribute": SITE_ATTRIBUTE}
        for metric in metrics:
            if metric not in rows:
                continue
            present = rows[rows[metric].notna()]
            for record in present.to_dict("records"):
                groups.append({**key, "group": record["site"], "metric": metric, "value": record[metric],
                               "ci_low": record.get(ci_low(metric)), "ci_high": record.get(ci_high(metric)),
                               "status": SCORED})
            if len(present) >= 2:
                gaps.append({**key, **_site_gap(present, metric)})
    return groups, gaps


def _site_gap(rows: pd.DataFrame, metric: str) -> dict[str, object]:
    sign = better(metric)
    ordered = rows.assign(_rank=sign * rows[metric]).sort_values("_rank")
    best, worst = ordered.iloc[-1], ordered.iloc[0]
    gap = sign * (best[metric] - worst[metric])
    se = math.hypot(best.get(standard_error(metric), np.nan), worst.get(standard_error(metric), np.nan))
    return {"metric": metric, "best_group": best["site"], "worst_group": worst["site"], "best_value": best[metric],
            "worst_value": worst[metric], "gap": gap, ci_low("gap"): gap - _Z95 * se, ci_high("gap"): gap + _Z95 * se,
            "groups_scored": len(rows)}


def _interval(record: dict, name: str) -> dict[str, float]:
    return {"ci_low": record.get(ci_low(name), np.nan), "ci_high": record.get(ci_high(name), np.nan)}


def _finite(value: object) -> bool:
    return isinstance(value, int | float | np.number) and math.isfinite(float(value))


def robustness_table(runs: pd.DataFrame) -> pd.DataFrame:
    """`ROBUSTNESS_COLUMNS`: every site's robustness run, one row per artefact × severity × metric (severity 0:
    the clean-trained head on clean embeddings)."""
    rows: dict[tuple, dict[str, object]] = {}
    for record in runs[runs["protocol"] == "robustness"].to_dict("records"):
        key = {c: record[c] for c in ("site", "model", "task")}
        for name, value in record.items():
            if not (isinstance(name, str) and name.startswith(naming.ROBUSTNESS_PREFIX) and _finite(value)):
                continue
            parts = name.removeprefix(naming.ROBUSTNESS_PREFIX).split("/")
            if len(parts) != 3:
                continue  # the summary number: `robustness_ranking`
            artefact, severity, measure = parts
            if measure in ("cosine_median", "cosine_p05"):
                continue  # read with each metric below
            metric, column = _robustness_measure(measure)
            entry = rows.setdefault((*key.values(), artefact, severity, metric), {
                **key, "artefact": artefact, "severity": int(severity.removeprefix("s")), "metric": metric,
                "cosine_median": record.get(f"{naming.ROBUSTNESS_PREFIX}{artefact}/{severity}/cosine_median"),
                "cosine_p05": record.get(f"{naming.ROBUSTNESS_PREFIX}{artefact}/{severity}/cosine_p05")})
            entry[column] = value
    frame = pd.DataFrame(list(rows.values())).reindex(columns=list(ROBUSTNESS_COLUMNS))
    return frame.sort_values(["task", "model", "site", "artefact", "severity", "metric"]).reset_index(drop=True)


def robustness_ranking(runs: pd.DataFrame) -> pd.DataFrame:
    """Per task × model: the clean linear-probe headline metric and the robustness summary (mean relative drop over
    the artefacts at the summary severity), each the mean over the sites that logged it, with both ranks."""
    summary = f"{naming.ROBUSTNESS_PREFIX}summary_drop"
    if summary not in runs:
        return pd.DataFrame(columns=list(RANKING_COLUMNS))
    rows = []
    for (task, model), group in runs.groupby(["task", "model"], sort=True):
        drops = group.loc[group["protocol"] == "robustness", summary].dropna()
        if drops.empty:
            continue
        linear = group[group["protocol"] == "linear"]
        metric = main_metric(linear) or ""
        clean = float(linear[metric].mean()) if metric else np.nan
        rows.append({"task": task, "model": model, "sites": len(drops), "metric": metric, "clean": clean,
                     "mean_relative_drop": float(drops.mean())})
    frame = pd.DataFrame(rows).reindex(columns=list(RANKING_COLUMNS))
    if frame.empty:
        return frame
    lower = frame["metric"].isin(LOWER_IS_BETTER)
    frame["accuracy_rank"] = frame.assign(_key=np.where(lower, frame["clean"], -frame["clean"])).groupby(
        "task")["_key"].rank(method="min")
    frame["robustness_rank"] = frame.groupby("task")["mean_relative_drop"].rank(method="min")
    frame[["accuracy_rank", "robustness_rank"]] = frame[["accuracy_rank", "robustness_rank"]].astype("Int64")
    return frame.sort_values(["task", "robustness_rank"]).reset_index(drop=True)


def _robustness_measure(measure: str) -> tuple[str, str]:
    """`auroc_ci_low` → ("auroc", "ci_low"); `auroc` → ("auroc", "value")."""
    for suffix in ("_ci_low", "_ci_high", "_drop"):
        if measure.endswith(suffix):
            return measure.removesuffix(suffix), suffix.removeprefix("_")
    return measure, "value"
