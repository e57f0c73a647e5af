"""The demo contract: `medprobe demo --out DIR` leaves DIR/mlflow.db with runs for 2 sites × 2 models ×
3 protocols, each tagged with site, model, protocol and task and holding metrics, plus a transfer run each way per
model and task; its output ends with the 2 × 2 transfer matrices. The README's Python example runs against the
folder the demo writes."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

import medprobe
from medprobe.cli.main import main

pytestmark = pytest.mark.slow(seconds=60)  # the module's fixture runs the whole demo

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    """One demo run for the module, into `<tmp>/medprobe-demo` (the README's folder name)."""
    out = tmp_path_factory.mktemp("demo") / "medprobe-demo"
    done = subprocess.run(
        [sys.executable, "-m", "medprobe.cli.main", "demo", "--out", str(out), "--subjects", "10", "--no-progress"],
        capture_output=True, text=True, timeout=600,
    )
    return out, done


def test_demo_end_to_end(demo: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    out, done = demo
    assert done.returncode == 0, done.stderr[-3000:]
    assert "sites side by side" in done.stdout and "mlflow ui --backend-store-uri" in done.stdout
    assert "RANDOM-INIT" in done.stdout

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    assert {"medprobe/demo-brain-mri", "medprobe/demo-fundus"} <= set(experiments)
    runs = client.search_runs([experiments["medprobe/demo-brain-mri"]], "tags.`medprobe.run_kind` = 'protocol'")
    combos = {(r.data.tags["medprobe.site"], r.data.tags["medprobe.model"], r.data.tags["medprobe.protocol"],
               r.data.tags["medprobe.task"]) for r in runs}
    assert len(combos) == 2 * 2 * (3 + 2)  # sites × models × (3 protocols on lesion, 2 on age: no few-shot)
    assert all(any(k.startswith("test/") for k in r.data.metrics) for r in runs)
    random_init = [r for r in runs if r.data.tags["medprobe.model"] == "dinov2_vits14"]
    assert all(r.data.tags["medprobe.weights"] == "random-init" for r in random_init)
    transfers = client.search_runs([experiments["medprobe/demo-brain-mri"]], "tags.`medprobe.run_kind` = 'transfer'")
    assert {(r.data.tags["medprobe.train_site"], r.data.tags["medprobe.site"], r.data.tags["medprobe.model"],
             r.data.tags["medprobe.task"]) for r in transfers} == {
        (train, test, model, task) for train, test in (("site-a", "site-b"), ("site-b", "site-a"))
        for model in ("dinov2_vits14", "handcrafted") for task in ("lesion", "age")}
    # A head that gives one prediction for every test sample carries the flag, read back from the run's own
    # predictions.csv; on ten subjects a site some of the demo's transfer heads do (so the check is not vacuous).
    constant = 0
    for run in transfers:
        predicted = pd.read_csv(client.download_artifacts(run.info.run_id, "predictions.csv", str(tmp_path)))["y_pred"]
        flagged = "constant" in run.data.tags.get("medprobe.flags", "").split("; ")
        assert flagged == (predicted.nunique() == 1), run.data.tags
        constant += flagged
    assert constant >= 1

    # 2 experiments × (2 models × 2 tasks + 2 models × 1 task) matrices, each with a row per train site, last.
    matrices = done.stdout.split("cross-site transfer")
    assert len(matrices) == 3 and done.stdout.count("(rows: train site; columns: test site") == 6
    last_rows = [line.split() for line in done.stdout.rstrip().splitlines()[-2:]]
    assert [row[0] for row in last_rows] == ["site-a", "site-b"]
    assert all(len(re.findall(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]", " ".join(row))) == 2 for row in last_rows)
    # Fits a terminal, apart from lines that name a file (as long as the folder the test runs in).
    assert [line for line in done.stdout.splitlines() if len(line) > 120 and str(out.parent) not in line] == []

    compare = subprocess.run(
        [sys.executable, "-m", "medprobe.cli.main", "compare", "--experiment", "medprobe/demo-brain-mri",
         "--tracking-uri", f"sqlite:///{out / 'mlflow.db'}", "--out", str(tmp_path / "cmp")],
        capture_output=True, text=True, timeout=300,
    )
    assert compare.returncode == 0, compare.stderr[-2000:]
    assert "site-a" in compare.stdout and "site-b" in compare.stdout
    assert (tmp_path / "cmp" / "comparison.csv").read_text().count("\n") == 20 + 1
    assert (tmp_path / "cmp" / "transfer.csv").read_text().count("\n") == 2 * 2 * 4 + 1


def test_demo_compares_models_pairwise_pools_sites_and_logs_subgroups_and_curves(
        demo: tuple[Path, subprocess.CompletedProcess[str]], tmp_path: Path) -> None:
    """The random-init DINOv2 against the handcrafted baseline on each site's test subjects, the sites pooled with
    I², every linear run's label-efficiency curve and subgroups (here all too small: 10 subjects a site), and the
    comparison report's sections."""
    out, done = demo
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pooled across sites" in done.stdout and "I²" in done.stdout
    assert "model vs baseline, paired" in done.stdout
    paired_lines = [line for line in done.stdout.splitlines() if "dinov2_vits14 handcrafted" in line]
    assert paired_lines, done.stdout[-3000:]

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("medprobe/demo-brain-mri").experiment_id
    paired = client.search_runs([experiment], "tags.`medprobe.run_kind` = 'paired'")
    assert {(r.data.tags["medprobe.site"], r.data.tags["medprobe.task"], r.data.tags["medprobe.protocol"],
             r.data.tags["medprobe.model"], r.data.tags["medprobe.baseline"]) for r in paired} == {
        (site, task, protocol, "dinov2_vits14", "handcrafted") for site in ("site-a", "site-b")
        for task in ("lesion", "age") for protocol in ("linear", "knn")}  # few-shot: means over episodes
    lesion = next(r for r in paired if r.data.tags["medprobe.task"] == "lesion")
    assert {"paired/auroc/difference", "paired/auroc/ci_low", "paired/auroc/p_value", "paired/auroc/delong_p",
            "paired/auroc/p_holm"} <= set(lesion.data.metrics)

    linear = client.search_runs([experiment], "tags.`medprobe.run_kind` = 'protocol' and "
                                              "tags.`medprobe.protocol` = 'linear'")
    for run in linear:
        metrics, params = run.data.metrics, run.data.params
        assert any(k.startswith("label_efficiency/pct_100/") for k in metrics)
        for attribute in ("sex", "age"):  # 10 subjects a site: every group too small, reported by count only
            assert f"subgroup/{attribute}/too_small" in params or any(
                k.startswith(f"subgroup/{attribute}/") for k in metrics)

    compare = subprocess.run(
        [sys.executable, "-m", "medprobe.cli.main", "compare", "--experiment", "medprobe/demo-brain-mri",
         "--tracking-uri", f"sqlite:///{out / 'mlflow.db'}", "--out", str(tmp_path / "cmp"), "--no-log"],
        capture_output=True, text=True, timeout=300,
    )
    assert compare.returncode == 0, compare.stderr[-2000:]
    report = (tmp_path / "cmp" / "report.html").read_text(encoding="utf-8")
    for section in ("Pooled across sites", "Model vs model", "Subgroups", "Label efficiency"):
        assert section in report
    import pandas as pd

    assert len(pd.read_csv(tmp_path / "cmp" / "paired.csv")) >= 2 * 2 * 2
    groups = pd.read_csv(tmp_path / "cmp" / "subgroups.csv")
    assert set(groups.loc[groups["attribute"] == "site", "group"]) == {"site-a", "site-b"}
    curves = pd.read_csv(tmp_path / "cmp" / "label_efficiency.csv")
    assert set(curves["site"]) == {"site-a", "site-b"} and 100 in set(curves["percent"])


def test_readme_python_example_runs_on_the_demo_folder(demo: tuple[Path, subprocess.CompletedProcess[str]]) -> None:
    """The README's "Python API" block, as written, from the folder that holds `medprobe-demo`."""
    out, done = demo
    assert done.returncode == 0, done.stderr[-3000:]
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    ran = subprocess.run([sys.executable, "-c", code], cwd=out.parent, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "linear" in ran.stdout and "mae" in ran.stdout  # the evaluation summary
    assert "(4, 48)" in ran.stdout  # four fundus images, 48 handcrafted features
    assert "site-a" in ran.stdout and "site-b" in ran.stdout  # the comparison table


def test_the_cli_and_the_api_compare_through_one_function(demo: tuple[Path, subprocess.CompletedProcess[str]],
                                                          tmp_path: Path) -> None:
    """What `medprobe compare --out` writes is what `medprobe.compare_experiment` returns."""
    out, done = demo
    assert done.returncode == 0, done.stderr[-3000:]
    uri = f"sqlite:///{out / 'mlflow.db'}"
    comparison = medprobe.compare_experiment("medprobe/demo-brain-mri", uri)
    assert comparison.runs.equals(medprobe.compare_sites("medprobe/demo-brain-mri", uri))
    assert main(["compare", "--experiment", "medprobe/demo-brain-mri", "--tracking-uri", uri,
                 "--out", str(tmp_path / "cmp"), "--no-log"]) == 0
    written = pd.read_csv(tmp_path / "cmp" / "pooled.csv")
    assert len(written) == len(comparison.pooled) > 0
    assert np.allclose(written["estimate"].to_numpy(), comparison.pooled["estimate"].to_numpy(),
                       equal_nan=True)
    transfer = pd.read_csv(tmp_path / "cmp" / "transfer.csv")
    assert len(transfer) == len(comparison.matrix) == 2 * 2 * 4
