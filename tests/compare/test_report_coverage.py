"""Nothing is left out of a comparison without a word: every (site, model, task, protocol) the store holds appears
in each of the report's views (summary, sites side by side, comparison.csv) with its interval and n, a model a
site did not run is a visible gap, and every site of a pooled row is either pooled or named with its reason."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medprobe.compare import compare_experiment, write_report
from medprobe.compare.summary import summary_table
from medprobe.compare.table import N_ROW
from medprobe.metrics.display import MISSING
from medprobe.tracking import TrackingStore, naming

SITES = ("site-a", "site-b", "site-c")
EXPERIMENT = "medprobe/coverage"


def _populate(uri: str) -> set[tuple[str, str, str, str]]:
    """Three sites; `foundation` everywhere, `baseline` not at site-c; site-a's linear `foundation` is perfect
    (standard error 0), site-b's k-NN logs no standard error. Returns what the store holds."""
    store = TrackingStore(uri)
    experiment = store.experiment_id(EXPERIMENT)
    held = set()
    for index, site in enumerate(SITES):
        for model in ("foundation", "baseline"):
            if model == "baseline" and site == "site-c":
                continue
            for protocol in ("linear", "knn"):
                tags = {naming.SITE: site, naming.MODEL: model, naming.TASK: "lesion", naming.PROTOCOL: protocol,
                        naming.RUN_KIND: "protocol"}
                run = store.start_run(experiment, f"{site} · {model} · lesion · {protocol}", tags)
                perfect = site == "site-a" and model == "foundation" and protocol == "linear"
                value = 1.0 if perfect else 0.6 + 0.05 * index
                metrics = {"test/auroc": value, "test/auroc_ci_low": value if perfect else value - 0.1,
                           "test/auroc_ci_high": value if perfect else value + 0.1, "data/n_test": 25,
                           "data/n_test_subjects": 20 + index}
                if not (site == "site-b" and protocol == "knn"):
                    metrics["test/auroc_se"] = 0.0 if perfect else 0.05
                store.log(run, metrics=metrics)
                store.finish(run)
                held.add((site, model, "lesion", protocol))
    return held


def test_every_result_appears_in_every_view_or_is_named_with_its_reason(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    held = _populate(uri)
    comparison = compare_experiment(TrackingStore(uri), EXPERIMENT)
    files = write_report(comparison.runs, EXPERIMENT, tmp_path / "cmp", comparison.matrix, comparison.pooled,
                         comparison.paired)

    csv = pd.read_csv(files.csv)
    assert set(zip(csv["site"], csv["model"], csv["task"], csv["protocol"], strict=True)) == held
    assert csv["n_test_subjects"].notna().all()

    summary = summary_table(comparison.runs, comparison.pooled, comparison.paired)
    side = comparison.side_by_side
    for model in ("foundation", "baseline"):
        for protocol in ("linear", "knn"):
            row = summary[(summary["model"] == model) & (summary["protocol"] == protocol)].iloc[0]
            counts = side.loc[("lesion", model, protocol, N_ROW)]
            values = side.loc[("lesion", model, protocol, "auroc")]
            for site in SITES:
                if (site, model, "lesion", protocol) in held:
                    assert f"n={20 + SITES.index(site)}" in row[site] and "[" in row[site]
                    assert counts[site] == str(20 + SITES.index(site)) and "[" in values[site]
                else:  # the gap is a cell that says so, never a missing row
                    assert row[site] == MISSING and counts[site] == MISSING and values[site] == MISSING

    pooled = comparison.pooled[(comparison.pooled["method"] == "dl") & (comparison.pooled["metric"] == "auroc")]
    for row in pooled.itertuples():
        sites = {site for site, model, _, protocol in held if model == row.model and protocol == row.protocol}
        left_out = {entry.split(" ")[0] for entry in row.left_out.split(";")
                    if entry and not entry.startswith("no estimate")}
        assert row.sites + len(left_out & sites) == len(sites), row  # corrected sites are among the pooled
    linear = pooled[(pooled["model"] == "foundation") & (pooled["protocol"] == "linear")].iloc[0]
    assert linear.corrected.startswith("site-a (1.000 with standard error 0 on 20 subjects)")
    knn = pooled[(pooled["model"] == "foundation") & (pooled["protocol"] == "knn")].iloc[0]
    assert knn.left_out == "site-b (no standard error logged)" and knn.sites == 2

    page = files.html.read_text(encoding="utf-8")
    assert page.index("<h2>Summary</h2>") < page.index("<h2>Sites side by side</h2>") < page.index(
        "<h2>Pooled across sites")
