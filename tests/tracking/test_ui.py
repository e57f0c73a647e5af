"""The MLflow UI shows both sites' protocol runs grouped by site with the metric as a column (medprobe's saved
view, benchmarks/ui_check.py in headless chromium); skipped without chromium."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from medprobe.tracking import TrackingStore, naming

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "ui_check.py"


@pytest.mark.slow(seconds=30)
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_mlflow_ui_lists_the_runs_of_both_sites(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    store = TrackingStore(f"sqlite:///{db}")
    experiment = store.experiment_id("medprobe/ui")
    for site in ("site-a", "site-b"):
        parent = store.start_run(experiment, naming.job_run_name(site, "handcrafted", "lesion"),
                                 {naming.SITE: site, naming.RUN_KIND: "job"})
        child = store.start_run(experiment, naming.protocol_run_name(site, "handcrafted", "lesion", "linear"),
                                {naming.SITE: site, naming.RUN_KIND: "protocol"}, parent)
        store.log(child, metrics={"test/auroc": 0.8})
        store.finish(child)
        store.finish(parent)
    screenshot = tmp_path / "ui.png"
    done = subprocess.run([sys.executable, str(SCRIPT), "--db", str(db), "--experiment", "medprobe/ui",
                           "--out", str(screenshot)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
    assert "Group: site-a: 0" not in done.stdout and "Group: site-b: 0" not in done.stdout
    assert "test/auroc: 0 " not in done.stdout and "grouped by site" in done.stdout
    assert screenshot.stat().st_size > 10_000
