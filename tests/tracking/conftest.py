"""A real `mlflow server` process on 127.0.0.1 with a SQLite backend and a temporary artifact folder.

MLflow's job runner (a huey consumer pool for its GenAI jobs, six more Python processes) is switched off: medprobe
never submits server jobs, and it roughly doubled the start-up and made shutdown take seconds. The server starts
in a session of its own so that `stop` ends its whole process group (the `mlflow` CLI and its uvicorn worker).
Every server starts from a copy of medprobe's template for new SQLite stores (`medprobe.tracking.sqlite_schema`):
an empty database at the installed MLflow's schema, migrated once per user and MLflow version; the server adds
the `Default` experiment, with its own artifact root, as it does on a database it migrated itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from medprobe.tracking.sqlite_schema import template_bytes
from tests.tracking.processes import free_port, stop_group

START_S, STOP_S = 90, 10


@dataclass
class MlflowServer:
    uri: str
    folder: Path
    port: int
    process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                   "--backend-store-uri", f"sqlite:///{self.folder / 'server.db'}",
                   "--artifacts-destination", str(self.folder / "artifacts"), "--workers", "1"]
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with (self.folder / "server.log").open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env=env, start_new_session=True)
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                if requests.get(f"{self.uri}/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"mlflow server did not start: {(self.folder / 'server.log').read_text()[-2000:]}")

    def stop(self) -> None:
        """SIGTERM to the process group, up to STOP_S seconds to exit, then SIGKILL to whatever is left."""
        if self.process is None:
            return
        stop_group(self.process, STOP_S)  # the CLI waits for its uvicorn worker before it exits
        self.process = None


@pytest.fixture(scope="session")
def mlflow_server_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow database at the installed version's schema (no `Default` experiment yet)."""
    data = template_bytes()
    assert data is not None, "the user's cache folder cannot be written"
    path = tmp_path_factory.mktemp("mlflow-template") / "server.db"
    path.write_bytes(data)
    return path


@pytest.fixture
def mlflow_server(tmp_path: Path, mlflow_server_template: Path) -> Iterator[MlflowServer]:
    port = free_port()
    folder = tmp_path / "server"
    folder.mkdir()
    shutil.copyfile(mlflow_server_template, folder / "server.db")
    server = MlflowServer(f"http://127.0.0.1:{port}", folder, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
