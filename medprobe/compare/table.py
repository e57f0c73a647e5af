"""Cross-site tables from the runs of one experiment: a row per site × model × task × protocol."""

from __future__ import annotations

import pandas as pd
from mlflow.entities import Run

from medprobe.compare.identity import IDENTITY, identity_of, label_models
from medprobe.metrics.catalogue import ANALYSED, SHOWN, ci_high, ci_low
from medprobe.metrics.display import MISSING, count, flag_mark, with_interval
from medprobe.tracking import TrackingStore, naming
from medprobe.tracking.reading import find_experiment
from medprobe.tracking.recorder import N_TEST, N_TEST_SUBJECTS
from medprobe.tracking.run_kinds import PROTOCOL, kind_filter

KEY_COLUMNS = ("site", "model", "task", "protocol")
#: The row of a side-by-side table that holds each site's test subjects.
N_ROW = "n (test subjects)"
#: The row that holds each site's plausibility flags (`medprobe.evaluation.plausibility`), where any site has one.
FLAGS_ROW = "flags"
#: The columns of `protocol_runs` before the metrics (`comparison.csv`).
COLUMNS = (*KEY_COLUMNS, "weights", "fingerprint", "model_key", "architecture", "n_test_subjects", "n_test", "flags")
#: Shown in the terminal; the CSV keeps every metric.
HEADLINE_METRICS = ANALYSED
#: The metric a figure shows: the first of these the runs have (classification first, then regression).
MAIN_METRICS = SHOWN


def protocol_runs(store: TrackingStore, experiment: str) -> pd.DataFrame:
    """One row per finished protocol run with its key tags, the model's identity, `test/*` metrics (prefix
    dropped) and the analyses' metrics (`subgroup/...`, `subgroup_gap/...`, `label_efficiency/...`, full names;
    `medprobe.compare.analyses` reads them). `model` is the display label (`medprobe.compare.identity`): the model
    key, qualified when runs of that key measured different models (fingerprints); `model_key`, `fingerprint`,
    `weights` and `architecture` hold the tags."""
    rows = []
    for run in store.results(experiment_id(store, experiment), kind_filter(PROTOCOL)):
        tags = run.data.tags
        row = {
            "site": tags.get(naming.SITE, "?"),
            "task": tags.get(naming.TASK, "?"),
            "protocol": tags.get(naming.PROTOCOL, "?"),
            **identity_of(tags),
            "start_time": run.info.start_time,
            "flags": tags.get(naming.FLAGS, ""),
        }
        analyses = {k: v for k, v in run.data.metrics.items() if k.startswith(naming.ANALYSIS_PREFIXES)}
        counts = {"n_test": run.data.metrics.get(N_TEST),
                  "n_test_subjects": run.data.metrics.get(N_TEST_SUBJECTS)}
        rows.append(row | counts | held_out_metrics(run) | analyses)
    if not rows:
        return pd.DataFrame(columns=list(COLUMNS))
    frame = pd.DataFrame(rows).sort_values("start_time", kind="stable")
    # A re-run of the same job (same site, same model, same task) supersedes the earlier one.
    frame = frame.drop_duplicates(["site", *IDENTITY, "task", "protocol"], keep="last").drop(columns=["start_time"])
    frame = label_models(frame)
    frame = frame[[*COLUMNS, *(c for c in frame.columns if c not in COLUMNS)]]
    return frame.sort_values(list(KEY_COLUMNS)).reset_index(drop=True)


def experiment_id(store: TrackingStore, experiment: str) -> str:
    """The experiment's id; an unknown name is an error that lists the experiments the store holds."""
    return find_experiment(store, experiment)


def held_out_metrics(run: Run) -> dict[str, float]:
    """The run's `test/*` metrics without the prefix."""
    return {k.removeprefix("test/"): v for k, v in run.data.metrics.items() if k.startswith("test/")}


def without_analyses(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` without the analyses' columns: `comparison.csv`, one column per held-out metric."""
    return runs[[c for c in runs.columns if not str(c).startswith(naming.ANALYSIS_PREFIXES)]]


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


def test_subjects(runs: pd.DataFrame) -> pd.Series:
    """Each run's test subjects; its test rows where it logged no subjects; NaN where neither is known."""
    subjects = runs["n_test_subjects"] if "n_test_subjects" in runs else pd.Series(float("nan"), index=runs.index)
    rows = runs["n_test"] if "n_test" in runs else pd.Series(float("nan"), index=runs.index)
    return subjects.astype(float).fillna(rows.astype(float))


def sites_side_by_side_text(runs: pd.DataFrame, metrics: tuple[str, ...] = HEADLINE_METRICS) -> pd.DataFrame:
    """`sites_side_by_side` as people read it: each cell `value [95 % CI]`, and first for each task × model ×
    protocol a row of each site's test subjects (test rows where a run did not log subjects), and last its
    plausibility flags where a site has any. A site without that model or protocol shows '–' in its column: a
    visible gap, never a missing row."""
    present = [m for m in metrics if m in runs.columns and runs[m].notna().any()]
    if runs.empty or not present:
        return pd.DataFrame()
    order = {name: rank for rank, name in enumerate([N_ROW, *present, FLAGS_ROW])}
    cells = []
    for record, subjects in zip(runs.to_dict("records"), test_subjects(runs), strict=True):
        key = {"task": record["task"], "model": record["model"], "protocol": record["protocol"]}
        cells.append({**key, "metric": N_ROW, "site": record["site"], "cell": count(subjects)})
        cells += [{**key, "metric": m, "site": record["site"],
                   "cell": with_interval(record.get(m), record.get(ci_low(m)), record.get(ci_high(m)))}
                  for m in present if pd.notna(record.get(m))]
        if record.get("flags"):
            cells.append({**key, "metric": FLAGS_ROW, "site": record["site"], "cell": flag_mark(record["flags"])})
    long = pd.DataFrame(cells)
    wide = long.pivot_table(index=["task", "model", "protocol", "metric"], columns="site", values="cell",
                            aggfunc="last")
    flag_rows = wide.index.get_level_values("metric") == FLAGS_ROW
    wide.loc[flag_rows] = wide.loc[flag_rows].fillna("")
    wide = wide.fillna(MISSING)
    wide.columns.name = None
    ranks = wide.index.get_level_values("metric").map(order)
    return wide.iloc[sorted(range(len(wide)), key=lambda i: (*wide.index[i][:3], ranks[i]))]
