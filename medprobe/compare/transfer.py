"""The cross-site transfer matrix: train site × test site, for each model and task, in one headline metric.

The diagonal is each site's own linear-probe test metric (its linear protocol run); a cell off the diagonal is a
transfer run: the test site scored the head the train site published. The headline metric is the first of
`MAIN_METRICS` the cells have (AUROC for classification, MAE for regression). `transfer_matrix` gives the cells in
long format with their 95 % intervals (`transfer.csv`); `matrix_tables` the train × test grids to show.

A matrix holds one model: runs are matched by identity (model key, fingerprint, weights label; see
`medprobe.compare.identity`), never by the model key alone, so a random-init control's cells never land in the
pretrained model's matrix.
"""

from __future__ import annotations

import pandas as pd

from medprobe.compare.identity import IDENTITY, identity_of, label_models, model_labels
from medprobe.compare.table import experiment_id, held_out_metrics, main_metric
from medprobe.metrics.catalogue import ci_high, ci_low
from medprobe.metrics.display import MISSING, count, with_flags, with_interval
from medprobe.tracking import TrackingStore, naming
from medprobe.tracking.recorder import N_TEST_SUBJECTS
from medprobe.tracking.run_kinds import TRANSFER, kind_filter

KEYS = ("train_site", "test_site", *IDENTITY, "task")
#: `transfer.csv`; `model` is the display label, the identity columns come last (added after the first release).
COLUMNS = ("model", "task", "metric", "train_site", "test_site", "kind", "value", "ci_low", "ci_high", *IDENTITY,
           "n_test_subjects", "flags")


def transfer_runs(store: TrackingStore, experiment: str) -> pd.DataFrame:
    """One row per transfer run (the newest per train site, test site, model identity and task) with its test
    metrics; `model` labelled as in `protocol_runs` (from these runs alone: `transfer_matrix` labels again)."""
    rows = []
    for run in store.results(experiment_id(store, experiment), kind_filter(TRANSFER)):
        tags = run.data.tags
        rows.append({"train_site": tags.get(naming.TRAIN_SITE, "?"), "test_site": tags.get(naming.SITE, "?"),
                     **identity_of(tags), "task": tags.get(naming.TASK, "?"),
                     "start_time": run.info.start_time, "n_test_subjects": run.data.metrics.get(N_TEST_SUBJECTS),
                     "flags": tags.get(naming.FLAGS, ""),
                     **held_out_metrics(run)})
    if not rows:
        return pd.DataFrame(columns=["model", *KEYS])
    frame = pd.DataFrame(rows).sort_values("start_time", kind="stable").drop_duplicates(list(KEYS), keep="last")
    frame = label_models(frame.drop(columns=["start_time"]))
    return frame.sort_values(list(KEYS)).reset_index(drop=True)


def transfer_matrix(runs: pd.DataFrame, transfers: pd.DataFrame) -> pd.DataFrame:
    """The cells of every (model, task) that has transfer runs: `runs` from `protocol_runs` give the diagonal.

    Cells combine only runs of one model identity (key, fingerprint, weights). `model` is labelled over the
    identities of `runs` and `transfers` together, as `protocol_runs` labels the side-by-side table."""
    if transfers.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    own = runs[runs["protocol"] == "linear"].drop(columns=["protocol"], errors="ignore")
    own = own.rename(columns={"site": "train_site"}).assign(test_site=lambda f: f["train_site"], kind="own")
    labels = model_labels(runs, transfers)
    cells = pd.concat([label_models(own, labels), label_models(transfers, labels).assign(kind="transfer")],
                      ignore_index=True)
    parts = []
    for (*identity, task), rows in cells.groupby([*IDENTITY, "task"], sort=True):
        metric = main_metric(rows)
        if metric is None or not (rows["kind"] == "transfer").any():
            continue
        part = rows[["train_site", "test_site", "kind"]].assign(
            model=labels[tuple(identity)], task=task, metric=metric, value=rows[metric],
            ci_low=rows.get(ci_low(metric)), ci_high=rows.get(ci_high(metric)),
            n_test_subjects=rows.get("n_test_subjects"), flags=rows.get("flags"),
            **dict(zip(IDENTITY, identity, strict=True)))
        parts.append(part.dropna(subset=["value"]))
    if not parts:
        return pd.DataFrame(columns=list(COLUMNS))
    return pd.concat(parts, ignore_index=True)[list(COLUMNS)].sort_values(
        ["model", "task", "train_site", "test_site"]).reset_index(drop=True)


def matrix_tables(matrix: pd.DataFrame, readable: bool = False) -> dict[tuple[str, str, str], pd.DataFrame]:
    """(model, task, metric) → a grid with a row per train site and a column per test site: the values, or with
    `readable` each cell `value [95 % CI]` and each test site's column named with its test subjects."""
    tables = {}
    for (model, task, metric), cells in matrix.groupby(["model", "task", "metric"], sort=True):
        if readable:
            cells = cells.assign(value=[with_flags(with_interval(r.value, r.ci_low, r.ci_high), r.flags)
                                        for r in cells.itertuples()])
        grid = cells.pivot_table(index="train_site", columns="test_site", values="value", aggfunc="last")
        sites = sorted(set(grid.index) | set(grid.columns))
        grid = grid.reindex(index=sites, columns=sites)
        if readable:
            subjects = cells.groupby("test_site")["n_test_subjects"].max() if "n_test_subjects" in cells else {}
            grid = grid.fillna(MISSING)
            grid.columns = [f"{site} (n {count(subjects.get(site))})" for site in grid.columns]
        grid.index.name, grid.columns.name = "train site", "test site"
        tables[(model, task, metric)] = grid
    return tables


def matrix_title(model: str, task: str, metric: str) -> str:
    return f"transfer · {task} · {model} · {metric} (rows: train site; columns: test site; diagonal: own probe)"
