"""The first screen of a comparison: per task and protocol, the models ranked, each with its pooled estimate and
heterogeneity, every site's value with its interval and test subjects, and the paired verdicts against baselines.

The ranking is by the pooled estimate (DerSimonian–Laird) where there is one, else by the mean over the sites that
scored the model, in the direction of the metric (`medprobe.metrics.catalogue.better`); the metric is the task's
headline (`main_metric`: AUROC for classification, MAE for regression). Nothing is left out: a model a site did not
run shows '–' in that site's column.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from medprobe.compare.table import main_metric, test_subjects
from medprobe.metrics.catalogue import better, ci_high, ci_low
from medprobe.metrics.display import MISSING, count, with_flags, with_interval

#: Protocols in the order the summary shows them (others follow by name).
PROTOCOL_ORDER = ("linear", "knn", "attentive", "fewshot")
SUMMARY_COLUMNS = ("task", "protocol", "metric", "rank", "model", "pooled", "I²", "verdicts")


def summary_table(runs: pd.DataFrame, pooled: pd.DataFrame | None, paired: pd.DataFrame | None) -> pd.DataFrame:
    """`SUMMARY_COLUMNS` with one column per site (`value [low, high] n=…`, and `! flags`) before `verdicts`."""
    runs = runs[runs["protocol"] != "robustness"]
    sites = sorted(runs["site"].unique())
    rows = []
    for (task, protocol), group in sorted(runs.groupby(["task", "protocol"]), key=_order):
        metric = main_metric(group)
        if metric is None:
            continue
        for model, scored in group.groupby("model", sort=True):
            estimate, pooled_text, i2 = _pooled(pooled, task, protocol, model, metric)
            if not np.isfinite(estimate):
                estimate = float(scored[metric].mean())
            rows.append({"task": task, "protocol": protocol, "metric": metric, "model": model, "_key": estimate,
                         "pooled": pooled_text, "I²": i2, **_site_cells(scored, sites, metric),
                         "verdicts": _verdicts(paired, task, protocol, model, metric)})
    if not rows:
        return pd.DataFrame(columns=[*SUMMARY_COLUMNS[:-1], *sites, "verdicts"])
    frame = pd.DataFrame(rows)
    sign = frame["metric"].map(better)
    frame["rank"] = (-sign * frame["_key"]).groupby([frame["task"], frame["protocol"]]).rank(method="min")
    frame["rank"] = frame["rank"].astype("Int64")
    frame = frame.sort_values(["task", "protocol", "rank", "model"], key=_protocol_key, kind="stable")
    return frame[[*SUMMARY_COLUMNS[:-1], *sites, "verdicts"]].reset_index(drop=True)


def _order(item: tuple[tuple[str, str], pd.DataFrame]) -> tuple[str, int, str]:
    (task, protocol), _ = item
    return task, *_protocol_rank(protocol)


def _protocol_rank(protocol: str) -> tuple[int, str]:
    return (PROTOCOL_ORDER.index(protocol), "") if protocol in PROTOCOL_ORDER else (len(PROTOCOL_ORDER), protocol)


def _protocol_key(column: pd.Series) -> pd.Series:
    if column.name != "protocol":
        return column
    return column.map(lambda protocol: _protocol_rank(protocol)[0])


def _pooled(pooled: pd.DataFrame | None, task: str, protocol: str, model: str, metric: str
            ) -> tuple[float, str, str]:
    """(estimate, `estimate [CI] (k sites)`, I²) of the DerSimonian–Laird row; NaN and '–' without one."""
    if pooled is None or pooled.empty:
        return np.nan, MISSING, MISSING
    match = pooled[(pooled["method"] == "dl") & (pooled["task"] == task) & (pooled["protocol"] == protocol)
                   & (pooled["model"] == model) & (pooled["metric"] == metric)]
    if match.empty or not np.isfinite(match["estimate"].iloc[0]):
        return np.nan, MISSING, MISSING
    row = match.iloc[0]
    text = f"{with_interval(row['estimate'], row['ci_low'], row['ci_high'])} ({int(row['sites'])} sites)"
    return float(row["estimate"]), text, f"{row['i2']:.0%}"


def _site_cells(scored: pd.DataFrame, sites: list[str], metric: str) -> dict[str, str]:
    cells = dict.fromkeys(sites, MISSING)
    for record, subjects in zip(scored.to_dict("records"), test_subjects(scored), strict=True):
        text = f"{with_interval(record.get(metric), record.get(ci_low(metric)), record.get(ci_high(metric)))} " \
               f"n={count(subjects)}"
        cells[record["site"]] = with_flags(text, record.get("flags"))
    return cells


def _verdicts(paired: pd.DataFrame | None, task: str, protocol: str, model: str, metric: str) -> str:
    """`vs baseline: site-a favours model, site-b no difference` for each baseline the model was compared with."""
    if paired is None or paired.empty:
        return ""
    rows = paired[(paired["task"] == task) & (paired["protocol"] == protocol) & (paired["model"] == model)
                  & (paired["metric"] == metric)]
    parts = []
    for baseline, against in rows.groupby("baseline", sort=True):
        said = [f"{r.site} {'favours ' + r.favours if isinstance(r.favours, str) and r.favours else 'no difference'}"
                for r in against.itertuples()]
        parts.append(f"vs {baseline}: {', '.join(said)}")
    return "; ".join(parts)
