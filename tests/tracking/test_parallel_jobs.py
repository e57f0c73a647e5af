"""Several site jobs writing to one tracking store at once: a fresh SQLite file and a real `mlflow server`."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from medprobe.tracking import naming

SITES = ("site-a", "site-b", "site-c")
PROTOCOLS = ("linear", "knn")
EXPERIMENT = "medprobe/parallel"


def _run_sites_at_once(tmp_path: Path, manifest: Path, write_spec: Callable[..., Path], uri: str) -> None:
    processes = []
    for site in SITES:
        spec = write_spec(
            manifest, name=f"spec-{site}.yaml", workdir=str(tmp_path / f"work-{site}"),
            tracking={"uri": uri, "experiment": EXPERIMENT},
            protocols={"linear": {"bootstrap": 0}, "knn": {"k": [3], "primary_k": 3, "bootstrap": 0}},
        )
        env = {**os.environ, "MEDPROBE_SITE": site, "MLFLOW_DISABLE_TELEMETRY": "true"}
        env.pop("MLFLOW_TRACKING_URI", None)
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "medprobe.cli.main", "run", str(spec), "--no-progress"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        ))
    for site, process in zip(SITES, processes, strict=True):
        output, _ = process.communicate(timeout=300)
        assert process.returncode == 0, f"{site}:\n{output[-3000:]}"
        assert "tracking: offline" not in output, f"{site} lost the tracking store:\n{output[-3000:]}"


def _assert_every_run_filed(uri: str) -> None:
    client = MlflowClient(uri)
    experiments = {e.name: e.experiment_id for e in client.search_experiments()}
    assert set(experiments) == {"Default", EXPERIMENT}
    assert client.search_runs([experiments["Default"]]) == []
    runs = client.search_runs([experiments[EXPERIMENT]], max_results=1000)
    assert all(r.info.status == "FINISHED" for r in runs)
    jobs = {r.data.tags[naming.SITE] for r in runs if r.data.tags[naming.RUN_KIND] == "job"}
    protocols = sorted((r.data.tags[naming.SITE], r.data.tags[naming.PROTOCOL]) for r in runs
                       if r.data.tags[naming.RUN_KIND] == "protocol")
    assert jobs == set(SITES)
    assert protocols == sorted((site, protocol) for site in SITES for protocol in PROTOCOLS)
    # A job that finishes its own evaluation after another site published scores that site's head: how many
    # transfer runs there are depends on the timing, but each is between two different sites.
    transfers = [r for r in runs if r.data.tags[naming.RUN_KIND] == "transfer"]
    assert all(r.data.tags[naming.TRAIN_SITE] != r.data.tags[naming.SITE] for r in transfers)
    assert len(runs) - len(transfers) == len(SITES) * (1 + len(PROTOCOLS) + 1)  # job, protocols, diagnostics
    parents = {r.info.run_id: r.data.tags[naming.SITE] for r in runs if r.data.tags[naming.RUN_KIND] == "job"}
    for run in runs:
        if run.data.tags[naming.RUN_KIND] == "protocol":
            assert parents[run.data.tags["mlflow.parentRunId"]] == run.data.tags[naming.SITE]
            assert any(key.startswith("test/") for key in run.data.metrics)


@pytest.mark.slow(seconds=40)
def test_three_site_jobs_at_once_on_a_fresh_sqlite_file(tmp_path: Path, volume_dataset, write_spec) -> None:
    uri = f"sqlite:///{tmp_path / 'shared' / 'mlflow.db'}"
    _run_sites_at_once(tmp_path, volume_dataset(n=12), write_spec, uri)
    _assert_every_run_filed(uri)


@pytest.mark.slow(seconds=40)
def test_three_site_jobs_at_once_on_a_tracking_server(tmp_path: Path, volume_dataset, write_spec,
                                                      mlflow_server) -> None:
    _run_sites_at_once(tmp_path, volume_dataset(n=12), write_spec, mlflow_server.uri)
    _assert_every_run_filed(mlflow_server.uri)
