"""Killed jobs leave nothing a reader takes for a result: SIGTERM marks the open runs KILLED (exit 143), SIGKILL's
runs are closed by the next attempt, a re-run supersedes what it repeats, and `compare` sees each result once;
`sync` keeps the original times, so an old bundle never looks newer than a later online run."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from medprobe.api import compare_sites
from medprobe.cli.main import main
from medprobe.tracking import naming

PROTOCOLS = {"linear": {"bootstrap": 0}, "knn": {"k": [3], "primary_k": 3, "bootstrap": 0},
             "fewshot": {"shots": [1, 2], "episodes": 5, "bootstrap": 0}}
TASKS = [{"name": "lesion", "target": "label"}, {"name": "age", "target": "age", "type": "regression"}]
EXPERIMENT = "medprobe/unit"


def _runs(uri: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return []
    return client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=1000)


def _start_and_stop(spec: Path, uri: str, how: signal.Signals) -> subprocess.CompletedProcess[str]:
    """Start the job; as soon as its first run exists (it is logging), send `how`."""
    process = subprocess.Popen([sys.executable, "-m", "medprobe.cli.main", "run", str(spec), "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if _runs(uri):
                break
        except Exception:  # noqa: BLE001 - the store may be mid-creation; look again
            pass
        time.sleep(0.02)
    assert process.poll() is None, "the job ended before it could be stopped while logging"
    process.send_signal(how)
    out, err = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def _complete(uri: str) -> None:
    """Every (model, task, protocol) result exactly once, from FINISHED runs."""
    table = compare_sites(EXPERIMENT, uri)
    assert len(table) == len(TASKS) * len(PROTOCOLS) - 1  # few-shot does not apply to the regression task
    assert not table.duplicated(["site", "model", "task", "protocol"]).any()


@pytest.mark.slow
def test_sigterm_marks_open_runs_killed_and_a_rerun_completes(volume_dataset, write_spec, tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = write_spec(volume_dataset(n=16), tasks=TASKS, protocols=PROTOCOLS)
    stopped = _start_and_stop(spec, uri, signal.SIGTERM)
    assert stopped.returncode == 143, stopped.stderr[-2000:]
    assert "stopped by SIGTERM" in stopped.stderr and "Traceback" not in stopped.stderr, stopped.stderr[:6000]
    statuses = {run.info.status for run in _runs(uri)}
    assert "RUNNING" not in statuses and "KILLED" in statuses

    assert main(["run", str(spec), "--no-progress"]) == 0
    _complete(uri)
    first = {r.info.run_id for r in _runs(uri) if r.data.tags.get(naming.ATTEMPT) and r.info.status == "FINISHED"}
    attempts = {r.data.tags[naming.ATTEMPT] for r in _runs(uri)}
    assert len(attempts) == 2 and first


@pytest.mark.slow
def test_sigkill_leaves_running_runs_that_the_next_attempt_closes(volume_dataset, write_spec,
                                                                   tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = write_spec(volume_dataset(n=16), tasks=TASKS, protocols=PROTOCOLS)
    killed = _start_and_stop(spec, uri, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    left = [run.info.run_id for run in _runs(uri) if run.info.status == "RUNNING"]
    assert left, "a SIGKILL while logging leaves the open runs RUNNING"

    assert main(["run", str(spec), "--no-progress"]) == 0
    runs = {run.info.run_id: run for run in _runs(uri)}
    assert all(runs[run_id].info.status == "KILLED" for run_id in left)
    assert "RUNNING" not in {run.info.status for run in runs.values()}
    _complete(uri)
    # The bundle of the killed attempt holds its runs as KILLED too, so a later sync delivers no running run.
    bundles = sorted((tmp_path / "work" / "bundles").iterdir())
    assert len(bundles) == 2
    statuses = {pd.read_json(p, typ="series")["status"] for p in bundles[0].glob("runs/*/run.json")}
    assert "RUNNING" not in statuses


def test_a_rerun_supersedes_what_it_repeats_and_sync_keeps_the_original_times(volume_dataset, write_spec,
                                                                              tmp_path: Path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    spec = write_spec(volume_dataset(n=12), protocols={"linear": {"bootstrap": 0}})
    assert main(["run", str(spec), "--offline", "--no-progress"]) == 0
    old_bundle = Path(re.search(r"^bundle: (.+)$", capsys.readouterr().out, re.MULTILINE).group(1))
    time.sleep(0.05)
    assert main(["run", str(spec), "--no-progress"]) == 0
    assert main(["run", str(spec), "--no-progress"]) == 0  # a plain re-run
    runs = _runs(uri)
    superseded = [r for r in runs if naming.SUPERSEDED_BY in r.data.tags]
    assert len(superseded) == len(runs) // 2  # the first online attempt's runs, all repeated by the second
    capsys.readouterr()

    assert main(["sync", str(old_bundle), "--to", uri]) == 0
    synced = [r for r in _runs(uri) if r.data.tags.get(naming.RUN_UID) and
              (old_bundle / "runs" / r.data.tags[naming.RUN_UID]).is_dir()]
    synced_ids = {r.info.run_id for r in synced}
    online = [r for r in _runs(uri) if r.info.run_id not in synced_ids]
    assert synced and max(r.info.start_time for r in synced) < min(r.info.start_time for r in online)
    assert all(r.info.end_time and r.info.end_time >= r.info.start_time for r in synced)
    table = compare_sites(EXPERIMENT, uri)  # the newest result of each key: still the online one
    newest = max((r for r in online if naming.SUPERSEDED_BY not in r.data.tags
                  and r.data.tags.get(naming.PROTOCOL) == "linear"), key=lambda r: r.info.start_time)
    assert table.loc[table["protocol"] == "linear", "auroc"].item() == newest.data.metrics["test/auroc"]
    client = MlflowClient(uri)
    for run in synced:
        for key in run.data.metrics:
            assert len(client.get_metric_history(run.info.run_id, key)) == 1
