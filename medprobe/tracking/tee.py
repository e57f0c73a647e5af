"""Log to the results bundle always (when there is one), and to MLflow while it answers.

A tracking server that goes away in the middle of a job must not lose results or fail the job: the first
failed MLflow call switches the job to bundle-only, and `medprobe sync` delivers the bundle later. Without a
bundle (a command whose results are files already), a failed MLflow call is a TrackingError.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
from mlflow.exceptions import MlflowException

from medprobe.errors import TrackingError
from medprobe.tracking import naming
from medprobe.tracking.bundle import ResultsBundle
from medprobe.tracking.store import TrackingStore

log = logging.getLogger("medprobe.tracking")

#: What an unreachable or failing server raises through the MLflow client.
SERVER_FAILURES = (MlflowException, requests.RequestException, OSError)


class TeeStore:
    """The `TrackingStore` calls, fanned out; run ids handed out are the bundle's uids."""

    def __init__(self, bundle: ResultsBundle | None, online: TrackingStore | None,
                 offline_reason: str | None = None) -> None:
        self.bundle = bundle
        self.online = online
        self.offline_reason = offline_reason
        self._run_ids: dict[str, str] = {}
        self._experiments: dict[str, str] = {}

    def experiment_id(self, name: str) -> str:
        self._online(lambda store: self._experiments.setdefault(name, store.experiment_id(name)))
        return name

    def start_run(self, experiment_id: str, name: str, tags: Mapping[str, str],
                  parent_run_id: str | None = None) -> str:
        uid = self.bundle.start_run(experiment_id, name, tags, parent_run_id) if self.bundle else uuid.uuid4().hex

        def create(store: TrackingStore) -> None:
            experiment = self._experiments.get(experiment_id) or store.experiment_id(experiment_id)
            parent = self._run_ids.get(parent_run_id) if parent_run_id else None
            self._run_ids[uid] = store.start_run(experiment, name, {**tags, naming.RUN_UID: uid}, parent)

        self._online(create)
        return uid

    def log(self, run_id: str, metrics: Mapping[str, float] | None = None,
            params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None, step: int = 0) -> None:
        """The bundle keeps each metric's last value; MLflow its history by `step`."""
        if self.bundle:
            self.bundle.log(run_id, metrics, params, tags)
        self._on_run(run_id, lambda store, mlflow_id: store.log(mlflow_id, metrics, params, tags, step))

    def log_json(self, run_id: str, payload: Any, artifact_file: str) -> None:
        if self.bundle:
            self.bundle.log_json(run_id, payload, artifact_file)
        self._on_run(run_id, lambda store, mlflow_id: store.log_json(mlflow_id, payload, artifact_file))

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        if self.bundle:
            self.bundle.log_text(run_id, text, artifact_file)
        self._on_run(run_id, lambda store, mlflow_id: store.log_text(mlflow_id, text, artifact_file))

    def log_file(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        if self.bundle:
            self.bundle.log_file(run_id, path, artifact_path)
        self._on_run(run_id, lambda store, mlflow_id: store.log_file(mlflow_id, path, artifact_path))

    def finish(self, run_id: str, failed: bool = False) -> None:
        if self.bundle:
            self.bundle.finish(run_id, failed)
        self._on_run(run_id, lambda store, mlflow_id: store.finish(mlflow_id, failed))

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
        except SERVER_FAILURES as exc:
            if self.bundle is None:
                raise TrackingError(f"the tracking server stopped answering ({type(exc).__name__}: {exc})") from None
            self.offline_reason = f"tracking server stopped answering ({type(exc).__name__})"
            log.warning("%s; going on with the offline bundle only", self.offline_reason)
            self.online = None
