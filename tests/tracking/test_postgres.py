"""medprobe against the store the consortium runs: `mlflow server` on a real PostgreSQL database.

One PostgreSQL cluster and one MLflow server serve the whole module (tests/tracking/postgres_server.py); each test
writes an experiment of its own, so the tests do not see each other's runs.

- Several site jobs at once: three `medprobe run` processes (three sites, one experiment) each log their runs
  through the server; every expected run is there exactly once with its metrics, filed under the right site and
  parent, and `medprobe compare` gives the full table.
- An offline job and its bundle: `medprobe run --offline` logs nothing to the server; `medprobe sync` delivers
  the bundle (every run created), a second sync creates nothing, and the server's runs are the bundle's.
- A killed job: a job killed with SIGKILL while it logs, then run again, leaves no run RUNNING (the re-run closes
  the killed attempt's runs as KILLED) and each expected result once.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from medprobe.api import compare_sites
from medprobe.cli.main import main
from medprobe.tracking import naming
from medprobe.tracking.bundle import open_bundle
from tests.tracking import postgres_server as pg

# The module's servers (module-scoped fixtures); named here so that pytest finds them in this module.
postgres_server = pg.postgres_server
mlflow_on_postgres = pg.mlflow_on_postgres

pytestmark = pytest.mark.slow(seconds=30)

MODEL, TASK = "handcrafted", "lesion"
PROTOCOLS = ("linear", "knn")
JOB_TIMEOUT_S = 240


def _site_spec(tmp_path: Path, write_spec: Callable[..., Path], manifest: Path, site: str, uri: str,
               experiment: str) -> Path:
    return write_spec(
        manifest, name=f"spec-{site}.yaml", site=site, workdir=str(tmp_path / f"work-{site}"),
        tracking={"uri": uri, "experiment": experiment},
        protocols={"linear": {"bootstrap": 0}, "knn": {"k": [3], "primary_k": 3, "bootstrap": 0}},
    )


def _job(spec: Path, *flags: str) -> subprocess.Popen[str]:
    """`medprobe run SPEC --no-progress [flags]` as a process of its own, its site and URI from the spec only."""
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    for name in ("MLFLOW_TRACKING_URI", "MEDPROBE_SITE"):
        env.pop(name, None)
    return subprocess.Popen([sys.executable, "-m", "medprobe.cli.main", "run", str(spec), "--no-progress", *flags],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _finish(process: subprocess.Popen[str], label: str) -> str:
    try:
        output, _ = process.communicate(timeout=JOB_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"{label} did not finish in {JOB_TIMEOUT_S} s:\n{output[-3000:]}")
    assert process.returncode == 0, f"{label} exited {process.returncode}:\n{output[-3000:]}"
    return output


def _experiment_runs(uri: str, experiment: str) -> list[Run]:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return [] if found is None else client.search_runs([found.experiment_id], max_results=1000)


def _kind(run: Run) -> str:
    return run.data.tags.get(naming.RUN_KIND, "")


def _artifact_files(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    files: set[str] = set()
    for entry in client.list_artifacts(run_id, path):
        files |= _artifact_files(client, run_id, entry.path) if entry.is_dir else {entry.path}
    return files


def test_three_site_jobs_at_once_file_every_run_once(tmp_path: Path, volume_dataset, write_spec, mlflow_on_postgres,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    experiment, sites = "medprobe/pg-parallel", ("site-a", "site-b", "site-c")
    uri = mlflow_on_postgres.uri
    manifest = volume_dataset(n=12)
    jobs = [_job(_site_spec(tmp_path, write_spec, manifest, site, uri, experiment)) for site in sites]
    for site, job in zip(sites, jobs, strict=True):
        output = _finish(job, site)
        assert "tracking: offline" not in output, f"{site} lost the server:\n{output[-3000:]}"

    runs = _experiment_runs(uri, experiment)
    assert all(r.info.status == "FINISHED" for r in runs), [(r.info.run_name, r.info.status) for r in runs]
    by_kind = {kind: [r for r in runs if _kind(r) == kind] for kind in ("job", "protocol", "transfer", "diagnostics")}
    assert len(runs) == sum(map(len, by_kind.values())), sorted(r.info.run_name for r in runs)
    # Each expected run exactly once, under its name; nothing misfiled: the site in the name is the site tag.
    assert sorted(r.info.run_name for r in by_kind["job"]) == [naming.job_run_name(s, MODEL, TASK) for s in sites]
    assert sorted(r.info.run_name for r in by_kind["diagnostics"]) == [f"{s} · diagnostics" for s in sites]
    assert sorted(r.info.run_name for r in by_kind["protocol"]) == sorted(
        naming.protocol_run_name(s, MODEL, TASK, p) for s in sites for p in PROTOCOLS)
    for run in by_kind["job"] + by_kind["protocol"]:
        tags = run.data.tags
        assert run.info.run_name.split(" · ")[0] == tags[naming.SITE], run.info.run_name
        assert (tags[naming.MODEL], tags[naming.TASK]) == (MODEL, TASK)
    parents = {r.info.run_id: r.data.tags[naming.SITE] for r in by_kind["job"]}
    for run in by_kind["protocol"]:
        assert parents[run.data.tags["mlflow.parentRunId"]] == run.data.tags[naming.SITE]
        assert run.info.run_name.endswith(f" · {run.data.tags[naming.PROTOCOL]}")
        assert any(k.startswith("test/") for k in run.data.metrics), (run.info.run_name, run.data.metrics)
    # A job that finished its own evaluation after another site published scored that site's head: how many
    # transfer runs there are depends on the timing, but each names its two different sites as its tags do.
    for run in by_kind["transfer"]:
        tags = run.data.tags
        assert tags[naming.TRAIN_SITE] != tags[naming.SITE]
        assert run.info.run_name == naming.transfer_run_name(tags[naming.TRAIN_SITE], tags[naming.SITE], MODEL, TASK)
        assert any(k.startswith("test/") for k in run.data.metrics), run.info.run_name
    transfers = sorted((r.data.tags[naming.TRAIN_SITE], r.data.tags[naming.SITE]) for r in by_kind["transfer"])
    assert len(set(transfers)) == len(transfers), transfers

    capsys.readouterr()
    assert main(["compare", "--experiment", experiment, "--tracking-uri", uri, "--out", str(tmp_path / "cmp"),
                 "--no-log"]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    assert sorted(zip(table["site"], table["protocol"], strict=True)) == sorted(
        (s, p) for s in sites for p in PROTOCOLS)
    assert set(table["task"]) == {TASK} and table["auroc"].notna().all()
    assert all(site in printed for site in sites)
    cells = pd.read_csv(tmp_path / "cmp" / "transfer.csv")
    own = cells[cells["kind"] == "own"]
    assert sorted(zip(own["train_site"], own["test_site"], strict=True)) == [(s, s) for s in sites]
    assert len(cells[cells["kind"] == "transfer"]) == len(transfers)


def test_offline_job_syncs_once_and_the_server_holds_the_bundles_runs(
        tmp_path: Path, volume_dataset, write_spec, mlflow_on_postgres, capsys: pytest.CaptureFixture[str]) -> None:
    experiment, site = "medprobe/pg-offline", "site-offline"
    uri = mlflow_on_postgres.uri
    spec = _site_spec(tmp_path, write_spec, volume_dataset(n=12), site, uri, experiment)
    output = _finish(_job(spec, "--offline"), "offline job")
    match = re.search(r"^bundle: (.+)$", output, re.MULTILINE)
    assert match, output[-3000:]
    bundle_path = Path(match.group(1).strip())
    records = list(open_bundle(bundle_path).runs())
    assert len(records) == 1 + len(PROTOCOLS) + 1  # the job run, its protocol runs, the diagnostics run
    assert _experiment_runs(uri, experiment) == []  # offline: nothing reached the server

    capsys.readouterr()
    assert main(["sync", str(bundle_path), "--to", uri]) == 0
    assert f"{len(records)} run(s) created, 0 completed, 0 already there" in capsys.readouterr().out
    assert main(["sync", str(bundle_path), "--to", uri]) == 0
    assert f"0 run(s) created, 0 completed, {len(records)} already there" in capsys.readouterr().out

    runs = _experiment_runs(uri, experiment)
    assert len(runs) == len(records)
    by_uid = {r.data.tags[naming.RUN_UID]: r for r in runs}
    assert set(by_uid) == {record["uid"] for record in records}
    client = MlflowClient(uri)
    bundle = open_bundle(bundle_path)
    for record in records:
        run = by_uid[record["uid"]]
        assert run.info.run_name == record["name"]
        assert run.info.status == record["status"] == "FINISHED"
        assert record["tags"].items() <= run.data.tags.items()
        assert run.data.tags[naming.SITE] == site
        assert run.data.params == record["params"]
        assert run.data.metrics == pytest.approx(record["metrics"])
        parent = run.data.tags.get("mlflow.parentRunId")
        assert (by_uid[record["parent"]].info.run_id if record["parent"] else None) == parent
        artifacts_root = bundle_path / "runs" / record["uid"] / "artifacts"
        assert _artifact_files(client, run.info.run_id) == {
            p.relative_to(artifacts_root).as_posix() for p in bundle.artifacts(record["uid"])}
    protocols = sorted(r.data.tags[naming.PROTOCOL] for r in runs if _kind(r) == "protocol")
    assert protocols == sorted(PROTOCOLS)
    assert all(any(k.startswith("test/") for k in r.data.metrics) for r in runs if _kind(r) == "protocol")


def test_a_job_killed_while_logging_leaves_no_running_run_after_the_rerun(
        tmp_path: Path, volume_dataset, write_spec, mlflow_on_postgres) -> None:
    uri, experiment = mlflow_on_postgres.uri, "medprobe/pg-killed"
    spec = _site_spec(tmp_path, write_spec, volume_dataset(n=12), "site-k", uri, experiment)
    process = _job(spec)
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline and not _experiment_runs(uri, experiment):
        time.sleep(0.02)
    assert process.poll() is None, "the job ended before it could be killed while logging"
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    left = {r.info.run_id for r in _experiment_runs(uri, experiment) if r.info.status == "RUNNING"}
    assert left

    assert main(["run", str(spec), "--no-progress"]) == 0
    runs = _experiment_runs(uri, experiment)
    assert {r.info.status for r in runs if r.info.run_id in left} == {"KILLED"}
    assert "RUNNING" not in {r.info.status for r in runs}
    results = [r for r in runs if r.info.status == "FINISHED" and naming.SUPERSEDED_BY not in r.data.tags]
    names = [r.info.run_name for r in results if _kind(r) == "protocol"]
    assert sorted(names) == sorted(f"site-k · {MODEL} · {TASK} · {p}" for p in PROTOCOLS)
    table = compare_sites(experiment, uri)
    assert sorted(table["protocol"]) == sorted(PROTOCOLS) and table["auroc"].notna().all()
