"""Log to the results bundle always (when there is one), and to MLflow while it answers.

A tracking server that goes away in the middle of a job must not lose results or fail the job: the first MLflow
call that fails to connect switches the job to bundle-only, and `medprobe sync` delivers the bundle later. Without
a bundle (a command whose results are files already), a lost server is a TrackingError. A failure that is not a
lost connection (`medprobe.tracking.failures`) is never hidden behind the bundle: a full disk is a DiskFullError,
anything else is raised as it is.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from medprobe.errors import TrackingError
from medprobe.interrupts import critical
from medprobe.tracking import naming
from medprobe.tracking.bundle import ResultsBundle
from medprobe.tracking.failures import disk_full, is_connection_failure, store_location
from medprobe.tracking.redaction import redacted_uri
from medprobe.tracking.store import TrackingStore

log = logging.getLogger("medprobe.tracking")
T = TypeVar("T")


def _uninterrupted(method: Callable[..., T]) -> Callable[..., T]:
    """Runs the call as a critical section: a SIGTERM waits until both writes are done."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with critical():
            return method(*args, **kwargs)

    return wrapper


class TeeStore:
    """The `TrackingStore` calls, fanned out; run ids handed out are the bundle's uids. Remembers which runs are
    still open, so that an interrupted job can mark them KILLED."""

    def __init__(self, bundle: ResultsBundle | None, online: TrackingStore | None,
                 offline_reason: str | None = None) -> None:
        self.bundle = bundle
        self.online = online
        self.offline_reason = offline_reason
        self.open_runs: list[str] = []
        self._run_ids: dict[str, str] = {}
        self._experiments: dict[str, str] = {}

    @_uninterrupted
    def experiment_id(self, name: str) -> str:
        self._online(lambda store: self._experiments.setdefault(name, store.experiment_id(name)))
        return name

    @_uninterrupted
    def start_run(self, experiment_id: str, name: str, tags: Mapping[str, str],
                  parent_run_id: str | None = None) -> str:
        uid = self.bundle.start_run(experiment_id, name, tags, parent_run_id) if self.bundle else uuid.uuid4().hex
        self.open_runs.append(uid)

        def create(store: TrackingStore) -> None:
            experiment = self._experiments.get(experiment_id) or store.experiment_id(experiment_id)
            parent = self._run_ids.get(parent_run_id) if parent_run_id else None
            self._run_ids[uid] = store.start_run(experiment, name, {**tags, naming.RUN_UID: uid}, parent)

        self._online(create)
        return uid

    @_uninterrupted
    def log(self, run_id: str, metrics: Mapping[str, float] | None = None,
            params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None, step: int = 0) -> None:
        """The bundle keeps each metric's last value; MLflow its history by `step`."""
        if self.bundle:
            self.bundle.log(run_id, metrics, params, tags)
        self._on_run(run_id, lambda store, mlflow_id: store.log(mlflow_id, metrics, params, tags, step))

    @_uninterrupted
    def log_json(self, run_id: str, payload: Any, artifact_file: str) -> None:
        if self.bundle:
            self.bundle.log_json(run_id, payload, artifact_file)
        self._on_run(run_id, lambda store, mlflow_id: store.log_json(mlflow_id, payload, artifact_file))

    @_uninterrupted
    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        if self.bundle:
            self.bundle.log_text(run_id, text, artifact_file)
        self._on_run(run_id, lambda store, mlflow_id: store.log_text(mlflow_id, text, artifact_file))

    @_uninterrupted
    def log_file(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        if self.bundle:
            self.bundle.log_file(run_id, path, artifact_path)
        self._on_run(run_id, lambda store, mlflow_id: store.log_file(mlflow_id, path, artifact_path))

    def finish(self, run_id: str, failed: bool = False) -> None:
        self.terminate(run_id, "FAILED" if failed else "FINISHED")

    @_uninterrupted
    def terminate(self, run_id: str, status: str) -> None:
        if self.bundle:
            self.bundle.terminate(run_id, status)
        self._on_run(run_id, lambda store, mlflow_id: store.terminate(mlflow_id, status))
        if run_id in self.open_runs:
            self.open_runs.remove(run_id)

    def kill_open_runs(self) -> int:
        """Mark every run still open KILLED (children first), wherever it was written; how many there were."""
        killed = list(reversed(self.open_runs))
        for run_id in killed:
            self.terminate(run_id, "KILLED")
        return len(killed)

    def server_run_id(self, uid: str) -> str | None:
        """The MLflow run id of run `uid`, while the server has it."""
        return self._run_ids.get(uid)

    def _on_run(self, uid: str, call: Callable[[TrackingStore, str], object]) -> None:
        if uid in self._run_ids:
            self._online(lambda store: call(store, self._run_ids[uid]))

    def _online(self, call: Callable[[TrackingStore], object]) -> None:
        if self.online is None:
            return
        try:
            call(self.online)
        except Exception as exc:
            full = disk_full(exc, store_location(self.online.uri))
            if full is not None:
                raise full from None
            if not is_connection_failure(exc):
                raise
            if self.bundle is None:
                raise TrackingError(f"the tracking server {redacted_uri(self.online.uri)} stopped answering "
                                    f"({type(exc).__name__})") from None
            self.offline_reason = f"tracking server stopped answering ({type(exc).__name__})"
            log.warning("%s; going on with the offline bundle only", self.offline_reason)
            self.online = None
