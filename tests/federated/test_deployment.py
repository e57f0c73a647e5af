"""The deployed path on 127.0.0.1: one SuperLink, two SuperNodes (one per site), `flwr run` of the generated app.

Every process starts in its own session and its whole process group is killed in teardown (SuperLink and
SuperNodes start SuperExec and ClientApp/ServerApp children). Flower starts one ClientApp process per message, so
even two rounds take a minute or more on a busy machine.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from medprobe.federated.deployment import write_app_project, write_flower_home
from medprobe.federated.settings import FederatedSettings

BIN = Path(sys.executable).parent
STARTUP_S, RUN_S = 60, 420


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"process exited early:\n{log.read_text()[-3000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {STARTUP_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def launch(tmp_path: Path) -> Iterator:
    started: list[subprocess.Popen] = []
    env = {**os.environ, "FLWR_HOME": str(tmp_path / "flwr-home"), "PYTHONUNBUFFERED": "1"}

    def start(name: str, *argv: str) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen([str(BIN / argv[0]), *argv[1:]], stdout=out, stderr=subprocess.STDOUT,
                                       env=env, cwd=tmp_path, start_new_session=True)
        started.append(process)
        return process, log

    start.env = env  # type: ignore[attr-defined]
    yield start
    for process in reversed(started):
        _kill_group(process, signal.SIGTERM)
    for process in reversed(started):
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)
        _kill_group(process, signal.SIGKILL)
        process.wait(timeout=10)


def _kill_group(process: subprocess.Popen, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # the group this test created: the process and its children
        os.killpg(process.pid, sig)


@pytest.mark.slow(seconds=60)
def test_superlink_two_supernodes_and_flwr_run(site_tables, launch, tmp_path: Path) -> None:
    link = free_port()
    superlink, log = launch("superlink", "flower-superlink", "--insecure", "--port", str(link),
                            "--disable-runtime-dependency-installation")
    wait_for_port(link, superlink, log)
    for name, table in site_tables:
        launch(f"supernode-{name}", "flower-supernode", "--insecure", "--superlink",
                                f"127.0.0.1:{link}", "--port", str(free_port()),
                                "--node-config", f'table="{table}" site="{name}"')
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    app = write_app_project(tmp_path / "app", FederatedSettings(
        target="label", rounds=2, tracking_uri=uri, experiment="deployed", timeout=RUN_S))
    write_flower_home(Path(launch.env["FLWR_HOME"]), f"127.0.0.1:{link}")

    run = subprocess.run([str(BIN / "flwr"), "run", str(app), "medprobe", "--stream"], env=launch.env,
                         cwd=tmp_path, capture_output=True, text=True, timeout=RUN_S)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-3000:]
    assert "all (n-weighted)" in output, output[-3000:]

    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("deployed").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    metrics = runs[0].data.metrics
    assert {"test/alpha/accuracy", "test/beta/accuracy", "round/accuracy"} <= set(metrics)
    assert metrics["test/accuracy"] > 0.6
    assert [m.step for m in client.get_metric_history(runs[0].info.run_id, "round/accuracy")] == [1, 2]
