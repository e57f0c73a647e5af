"""A real PostgreSQL server and a real `mlflow server` on it, both on 127.0.0.1, for the tests that import them.

The consortium runs `mlflow server` on PostgreSQL (docker/compose.yaml); these fixtures do the same with the
PostgreSQL server binaries of this machine (Debian's `postgresql` package: /usr/lib/postgresql/<version>/bin),
and skip the tests that use them, saying why, where there are none.

PostgreSQL refuses to run as root, so as root the cluster belongs to the `postgres` OS user (Debian's package
creates it) or else to `nobody`: `initdb`, `pg_ctl` and the server run under that user, in a folder of their own
under the system temp folder (pytest's tmp folders are private to root, so that user could not enter them). The
cluster listens on 127.0.0.1 on a free port and on a Unix socket in that folder only, trusts local connections
(a throwaway cluster: no password to keep), and runs without fsync, as nothing in it must survive a crash.
Stopping is `pg_ctl stop -m fast`, then `-m immediate`, then SIGKILL to the postmaster; the folder is removed.

The MLflow server runs as the tests do (the venv's Python, as root) with the PostgreSQL database as its backend
store, reached through SQLAlchemy's default driver for `postgresql://` (psycopg 3 since SQLAlchemy 2.1; a missing
driver fails the tests, it does not skip them), and a temporary artifact folder. It runs in a session of its own,
so that stopping ends its whole process group: SIGTERM, a wait, then SIGKILL. Its first start creates MLflow's
schema in the empty database (MLflow's migrations, a few seconds).

A test process killed outright (SIGKILL) runs no teardown: the cluster then outlives it, in /tmp/medprobe-pg-*.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.tracking.processes import free_port, stop_group

PG_ROOT = Path("/usr/lib/postgresql")
PG_PROGRAMS = ("initdb", "pg_ctl", "postgres", "createdb")
DB_USER = "medprobe"  # the cluster's superuser (initdb -U), with trust auth: no password
DATABASE = "mlflow"
PG_START_S, PG_STOP_S = 60, 30
MLFLOW_START_S, MLFLOW_STOP_S = 120, 10  # the first start creates MLflow's whole schema in PostgreSQL


def find_postgres_bin() -> Path | None:
    """The folder holding initdb, pg_ctl, postgres and createdb: the newest /usr/lib/postgresql/<v>/bin, else
    the folder of `pg_ctl` on PATH; None where neither has them all."""
    candidates = sorted(PG_ROOT.glob("*/bin"), key=_version_key, reverse=True) if PG_ROOT.is_dir() else []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all(os.access(folder / name, os.X_OK) for name in PG_PROGRAMS):
            return folder
    return None


def _version_key(folder: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", folder.parent.name)) or (0,)


def postgresql_driver() -> str:
    """The DBAPI module SQLAlchemy uses for a plain `postgresql://` URI: `psycopg` (psycopg 3) since SQLAlchemy
    2.1, `psycopg2` before."""
    from sqlalchemy.dialects import postgresql

    return str(postgresql.dialect.driver)


@dataclass(frozen=True)
class OsUser:
    """Who runs PostgreSQL: this process's own user, or (as root) an unprivileged one."""

    name: str
    uid: int
    gid: int

    @classmethod
    def for_postgres(cls) -> OsUser:
        if os.geteuid() != 0:
            entry = pwd.getpwuid(os.geteuid())
            return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(name)
                return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)
        raise RuntimeError("running as root, and there is neither a `postgres` nor a `nobody` user to run "
                           "PostgreSQL as (it refuses to run as root)")

    def run(self, command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a command as this user; `user=`/`group=` change identity only when we are someone else (root)."""
        switch = {} if self.uid == os.geteuid() else {"user": self.uid, "group": self.gid, "extra_groups": []}
        env = {**os.environ, "HOME": str(cwd), "LC_ALL": "C"}
        return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout,
                              check=False, **switch)


@dataclass
class PostgresServer:
    """A throwaway cluster in `folder` (owned by `user`), listening on 127.0.0.1:`port` and a socket in `folder`."""

    bin: Path
    folder: Path
    port: int
    user: OsUser
    started: bool = False

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "postgres.log"

    @property
    def uri(self) -> str:
        return f"postgresql://{DB_USER}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> None:
        self._must(["initdb", "-D", str(self.data), "-U", DB_USER, "--auth=trust", "--encoding=UTF8",
                    "--locale=C", "--no-sync", "--no-instructions"], timeout=PG_START_S)
        options = " ".join([
            "-h 127.0.0.1", f"-p {self.port}", f"-k {shlex.quote(str(self.folder))}",  # no other address or socket
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
        ])
        self.started = True  # from here on `stop` has something to stop, even if the start fails half way
        self._must(["pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w",
                    "-t", str(PG_START_S), "start"], timeout=PG_START_S + 10)
        self._must(["createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", DB_USER, DATABASE], timeout=30)

    def stop(self) -> None:
        """`pg_ctl stop -m fast`, else `-m immediate`, else SIGKILL to the postmaster (its pid file's first line)."""
        if not self.started:
            return
        for mode in ("fast", "immediate"):
            try:
                done = self._pg_ctl_stop(mode)
            except subprocess.TimeoutExpired:
                continue
            if done.returncode == 0 or not (self.data / "postmaster.pid").exists():
                self.started = False
                return
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self.data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)
        self.started = False

    def _pg_ctl_stop(self, mode: str) -> subprocess.CompletedProcess[str]:
        return self.user.run([str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                              "-t", str(PG_STOP_S), "stop"], cwd=self.folder, timeout=PG_STOP_S + 10)

    def _must(self, command: list[str], timeout: float) -> None:
        done = self.user.run([str(self.bin / command[0]), *command[1:]], cwd=self.folder, timeout=timeout)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{done.stdout[-2000:]}"
                               f"{done.stderr[-2000:]}\n{log}")


@dataclass
class MlflowServer:
    """`mlflow server` on 127.0.0.1:`port` with `backend_uri` as its backend store, artifacts under `folder`."""

    uri: str
    backend_uri: str
    folder: Path
    port: int
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    def start(self) -> None:
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port),
                   "--backend-store-uri", self.backend_uri,
                   "--artifacts-destination", str(self.folder / "artifacts"), "--workers", "1"]
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true",
               "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=log, env=env, cwd=self.folder,
                                            start_new_session=True)
        deadline = time.monotonic() + MLFLOW_START_S
        while time.monotonic() < deadline and self.process.poll() is None:
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self.uri}/health", timeout=2).status_code == 200:
                    return
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"mlflow server did not start on {self.backend_uri}:\n"
                           f"{self.log.read_text(errors='replace')[-3000:]}")

    def stop(self) -> None:
        """SIGTERM to the process group, up to MLFLOW_STOP_S seconds to exit, then SIGKILL to what is left."""
        if self.process is None:
            return
        stop_group(self.process, MLFLOW_STOP_S)
        self.process = None


@contextlib.contextmanager
def running_postgres(bin_folder: Path) -> Iterator[PostgresServer]:
    user = OsUser.for_postgres()
    folder = Path(tempfile.mkdtemp(prefix="medprobe-pg-"))  # short: a Unix socket path has at most 107 bytes
    try:
        os.chown(folder, user.uid, user.gid)
        server = PostgresServer(bin_folder, folder, free_port(), user)
        try:
            server.start()
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def running_mlflow(backend_uri: str, folder: Path) -> Iterator[MlflowServer]:
    port = free_port()
    server = MlflowServer(f"http://127.0.0.1:{port}", backend_uri, folder, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def postgres_server() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster with an empty `mlflow` database, for one test module."""
    bin_folder = find_postgres_bin()
    if bin_folder is None:
        pytest.skip(f"no PostgreSQL server binaries ({', '.join(PG_PROGRAMS)}) in {PG_ROOT}/*/bin or on PATH: "
                    "install Debian's `postgresql` package to run the PostgreSQL tests")
    with running_postgres(bin_folder) as server:
        yield server


@pytest.fixture(scope="module")
def mlflow_on_postgres(postgres_server: PostgresServer,
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """`mlflow server` on the module's PostgreSQL database, as the consortium runs it; shared by the module's
    tests, so each test uses an experiment of its own."""
    driver = postgresql_driver()
    if importlib.util.find_spec(driver) is None:  # a missing dependency is a failure, not a reason to skip
        pytest.fail(f"{driver} is not installed: SQLAlchemy (so MLflow) needs it for a postgresql:// store; "
                    "the project's dev dependencies install it: pip install -e '.[dev]'")
    with running_mlflow(postgres_server.uri, tmp_path_factory.mktemp("mlflow-on-postgres")) as server:
        yield server
