"""Cross-site tables from the runs of one experiment: a row per site × model × task × protocol."""

from __future__ import annotations

import pandas as pd
from mlflow.entities import Run

from medprobe.errors import MedprobeError
from medprobe.tracking import TrackingStore, naming

KEY_COLUMNS = ("site", "model", "task", "protocol")
#: Shown in the terminal; the CSV keeps every metric.
HEADLINE_METRICS = ("accuracy", "balanced_accuracy", "auroc", "mae", "rmse", "r2")
#: The metric a figure shows: the first of these the runs have (classification first, then regression).
MAIN_METRICS = ("auroc", "balanced_accuracy", "accuracy", "mae", "r2")


def protocol_runs(store: TrackingStore, experiment: str) -> pd.DataFrame:
    """One row per finished protocol run with its key tags, weights label and `test/*` metrics (prefix dropped)."""
    rows = []
    for run in store.search_runs(experiment_id(store, experiment), f"tags.`{naming.RUN_KIND}` = 'protocol'"):
        tags = run.data.tags
        row = {
            "site": tags.get(naming.SITE, "?"),
            "model": tags.get(naming.MODEL, "?"),
            "task": tags.get(naming.TASK, "?"),
            "protocol": tags.get(naming.PROTOCOL, "?"),
            "weights": tags.get(naming.WEIGHTS, "?"),
            "start_time": run.info.start_time,
        }
        rows.append(row | held_out_metrics(run))
    if not rows:
        return pd.DataFrame(columns=[*KEY_COLUMNS, "weights"])
    frame = pd.DataFrame(rows).sort_values("start_time")
    # A re-run of the same job supersedes the earlier one.
    frame = frame.drop_duplicates(list(KEY_COLUMNS), keep="last").drop(columns=["start_time"])
    return frame.sort_values(list(KEY_COLUMNS)).reset_index(drop=True)


def experiment_id(store: TrackingStore, experiment: str) -> str:
    found = store.client.get_experiment_by_name(experiment)
    if found is None:
        raise MedprobeError(f"experiment '{experiment}' not found in the tracking store")
    return found.experiment_id


def held_out_metrics(run: Run) -> dict[str, float]:
    """The run's `test/*` metrics without the prefix."""
    return {k.removeprefix("test/"): v for k, v in run.data.metrics.items() if k.startswith("test/")}


def main_metric(rows: pd.DataFrame) -> str | None:
    for metric in MAIN_METRICS:
        if metric in rows and rows[metric].notna().any():
            return metric
    return None


def sites_side_by_side(runs: pd.DataFrame, metrics: tuple[str, ...] = HEADLINE_METRICS) -> pd.DataFrame:
    """Rows task × model × protocol × metric, one column per site: the view an analyst compares."""
    present = [m for m in metrics if m in runs.columns]
    if runs.empty or not present:
        return pd.DataFrame()
    long = runs.melt(id_vars=list(KEY_COLUMNS), value_vars=present, var_name="metric").dropna(subset=["value"])
    wide = long.pivot_table(index=["task", "model", "protocol", "metric"], columns="site", values="value",
                            aggfunc="last")
    wide.columns.name = None
    return wide
