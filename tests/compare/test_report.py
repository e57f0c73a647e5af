from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from medprobe.cli.main import main
from medprobe.compare import matrix_tables, protocol_runs, transfer_matrix, transfer_runs
from medprobe.tracking import TrackingStore, naming


def _populate(uri: str) -> None:
    store = TrackingStore(uri)
    experiment = store.experiment_id("medprobe/cmp")
    for site_index, site in enumerate(("site-a", "site-b", "site-c")):
        for model in ("dinov2_vits14", "handcrafted"):
            for protocol in ("linear", "fewshot"):
                tags = {naming.SITE: site, naming.MODEL: model, naming.TASK: "lesion", naming.PROTOCOL: protocol,
                        naming.RUN_KIND: "protocol", naming.WEIGHTS: "random-init"}
                run = store.start_run(experiment, f"{site} · {model} · lesion · {protocol}", tags)
                base = 0.6 + 0.1 * site_index + (0.05 if model == "handcrafted" else 0)
                metrics = {"test/auroc": base, "test/auroc_ci_low": base - 0.05, "test/auroc_ci_high": base + 0.05,
                           "test/accuracy": base - 0.1}
                if protocol == "fewshot":
                    metrics |= {f"test/shots{k}/accuracy_mean": base - 0.2 + 0.02 * k for k in (1, 2, 4)}
                elif not (site == "site-c" and model == "handcrafted"):  # a site without a standard error
                    metrics["test/auroc_se"] = 0.02 + 0.01 * site_index
                store.log(run, metrics=metrics)
                store.finish(run)


@pytest.mark.slow
def test_compare_writes_csv_report_and_logs_a_comparison_run(tmp_path: Path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    _populate(uri)
    out = tmp_path / "cmp"
    assert main(["compare", "--experiment", "medprobe/cmp", "--tracking-uri", uri, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "site-a" in printed and "site-c" in printed
    csv = (out / "comparison.csv").read_text().splitlines()
    assert len(csv) == 1 + 3 * 2 * 2 and "auroc_ci_low" in csv[0]
    page = (out / "report.html").read_text()
    assert page.count("<img") >= 5 and "Sites side by side" in page
    assert {p.name for p in out.glob("*.png")} >= {"lesion_linear_heatmap.png", "lesion_linear_forest.png",
                                                  "lesion_fewshot_fewshot.png"}
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("medprobe/cmp").experiment_id
    comparisons = client.search_runs([experiment], f"tags.`{naming.RUN_KIND}` = 'comparison'")
    assert len(comparisons) == 1
    logged = {a.path for a in client.list_artifacts(comparisons[0].info.run_id, "comparison")}
    assert "comparison/report.html" in logged and "comparison/comparison.csv" in logged
    assert "comparison/pooled.csv" in logged
    # The comparison run is not itself a row of the next comparison.
    assert main(["compare", "--experiment", "medprobe/cmp", "--tracking-uri", uri, "--out", str(out),
                 "--no-log"]) == 0
    assert len((out / "comparison.csv").read_text().splitlines()) == 13


def _populate_transfer(uri: str) -> None:
    """Linear runs of three sites for a classification and a regression task; transfer runs between a and b."""
    store = TrackingStore(uri)
    experiment = store.experiment_id("medprobe/cmp")
    values = {("a", "a"): 0.9, ("b", "b"): 0.8, ("c", "c"): 0.7, ("a", "b"): 0.6, ("b", "a"): 0.5}
    for (train, test), value in values.items():
        for task, metric, scale in (("lesion", "auroc", 1.0), ("age", "mae", 10.0)):
            tags = {naming.SITE: f"site-{test}", naming.MODEL: "handcrafted", naming.TASK: task}
            if train == test:
                tags |= {naming.PROTOCOL: "linear", naming.RUN_KIND: "protocol"}
            else:
                tags |= {naming.PROTOCOL: "transfer", naming.RUN_KIND: "transfer", naming.TRAIN_SITE: f"site-{train}"}
            run = store.start_run(experiment, f"{train} → {test} · {task}", tags)
            store.log(run, metrics={f"test/{metric}": value * scale, f"test/{metric}_ci_low": value * scale - 0.1,
                                    f"test/{metric}_ci_high": value * scale + 0.1})
            store.finish(run)


def test_compare_draws_the_transfer_matrix(tmp_path: Path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    _populate_transfer(uri)
    out = tmp_path / "cmp"
    assert main(["compare", "--experiment", "medprobe/cmp", "--tracking-uri", uri, "--out", str(out), "--no-log"]) == 0
    printed = capsys.readouterr().out
    assert "transfer · lesion · handcrafted · auroc" in printed and "transfer · age · handcrafted · mae" in printed
    # Transfer runs are not rows of the side-by-side comparison.
    assert len(pd.read_csv(out / "comparison.csv")) == 6
    cells = pd.read_csv(out / "transfer.csv")
    # The original columns first, in their order; the model's identity columns after them.
    assert list(cells.columns) == ["model", "task", "metric", "train_site", "test_site", "kind", "value", "ci_low",
                                   "ci_high", "model_key", "fingerprint", "weights", "n_test_subjects", "flags"]
    lesion = cells[cells["task"] == "lesion"].set_index(["train_site", "test_site"])
    assert lesion.loc[("site-a", "site-b"), "value"] == 0.6 and lesion.loc[("site-a", "site-b"), "kind"] == "transfer"
    assert lesion.loc[("site-c", "site-c"), "kind"] == "own" and lesion.loc[("site-c", "site-c"), "ci_low"] == 0.6
    assert set(cells[cells["task"] == "age"]["metric"]) == {"mae"}
    page = (out / "report.html").read_text()
    assert "Cross-site transfer" in page and page.count('alt="transfer matrix"') == 2
    assert {p.name for p in out.glob("*_transfer.png")} == {"lesion_handcrafted_transfer.png",
                                                           "age_handcrafted_transfer.png"}


def test_matrix_grid_has_a_row_and_a_column_per_site(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    _populate_transfer(uri)
    store = TrackingStore(uri)
    matrix = transfer_matrix(protocol_runs(store, "medprobe/cmp"), transfer_runs(store, "medprobe/cmp"))
    grid = matrix_tables(matrix)[("handcrafted", "lesion", "auroc")]
    assert list(grid.index) == list(grid.columns) == ["site-a", "site-b", "site-c"]
    assert grid.loc["site-b", "site-a"] == 0.5 and pd.isna(grid.loc["site-a", "site-c"])


def test_compare_pools_sites_with_a_random_effects_model_as_statsmodels_does(tmp_path: Path, capsys) -> None:
    import numpy as np
    from statsmodels.stats.meta_analysis import combine_effects

    uri = f"sqlite:///{tmp_path / 'm.db'}"
    _populate(uri)
    out = tmp_path / "cmp"
    assert main(["compare", "--experiment", "medprobe/cmp", "--tracking-uri", uri, "--out", str(out), "--no-log"]) == 0
    printed = capsys.readouterr().out
    assert "pooled across sites" in printed
    pooled = pd.read_csv(out / "pooled.csv", keep_default_na=False)
    dl = pooled[(pooled["metric"] == "auroc") & (pooled["method"] == "dl") & (pooled["protocol"] == "linear")]
    dinov2, handcrafted = (dl[dl["model"].str.startswith(m)].iloc[0] for m in ("dinov2", "handcrafted"))
    assert dinov2["sites"] == 3 and dinov2["left_out"] == ""
    assert handcrafted["sites"] == 2 and handcrafted["left_out"] == "site-c (no standard error logged)"
    auroc, se = np.array([0.6, 0.7, 0.8]), np.array([0.02, 0.03, 0.04])
    logit, logit_se = np.log(auroc / (1 - auroc)), se / (auroc * (1 - auroc))
    reference = combine_effects(logit, logit_se**2, method_re="dl", use_t=False)
    assert float(dinov2["estimate"]) == pytest.approx(1 / (1 + np.exp(-reference.mean_effect_re)))
    assert float(dinov2["i2"]) == pytest.approx(max(0.0, reference.i2))
    assert "Pooled across sites (random effects)" in (out / "report.html").read_text()
