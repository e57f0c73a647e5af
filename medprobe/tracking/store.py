"""A thin wrapper over MlflowClient: explicit experiment ids, neutral system tags, batched logging.

The fluent API (`mlflow.set_experiment`, `mlflow.start_run`) keeps global state that races between parallel
jobs and can file a run under "Default"; medprobe only uses the client with explicit ids.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param, Run, RunTag, ViewType
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.utils.time import get_current_time_millis

from medprobe.errors import TrackingError
from medprobe.tracking.naming import NEUTRAL_SYSTEM_TAGS, SUPERSEDED_BY
from medprobe.tracking.sqlite_schema import ensure_schema
from medprobe.tracking.uri import redacted_uri

#: Set (unless the user set them) when the first store opens, not at import: importing medprobe changes nothing.
#: Telemetry off; no "View run ... at URL" line per finished run, nor a progress bar per downloaded probe head;
#: and an unreachable server noticed within seconds instead of MLflow's minutes of retries, so a batch job goes
#: on with its offline bundle.
MLFLOW_ENVIRONMENT = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "20",
}


#: The experiment tag that makes MLflow 3's UI open an experiment on its runs (the classic model-development view)
#: rather than the GenAI overview, which shows nothing of a medprobe experiment.
MODEL_DEVELOPMENT = ("mlflow.experimentKind", "custom_model_development")


class TrackingStore:
    def __init__(self, uri: str) -> None:
        for name, value in MLFLOW_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        self.uri = uri
        try:
            # Parallel site jobs may open a fresh SQLite file together: one of them creates the schema.
            ensure_schema(uri)
            self.client = MlflowClient(tracking_uri=uri)
        except MlflowException as exc:
            raise TrackingError(f"cannot open MLflow tracking store {redacted_uri(uri)}: {exc.message}") from None

    def experiment_id(self, name: str, attempts: int = 3) -> str:
        """Get or create by name; a concurrent creator winning the race is fine. A create that fails for
        another reason (a SQLite file busy with another job's write) is tried again after a short pause."""
        for attempt in range(attempts):
            existing = self.client.get_experiment_by_name(name)
            if existing is not None:
                return existing.experiment_id
            try:
                return self.client.create_experiment(name, artifact_location=self._artifact_location(name),
                                                     tags=dict([MODEL_DEVELOPMENT]))
            except MlflowException:
                again = self.client.get_experiment_by_name(name)
                if again is not None:
                    return again.experiment_id
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    def _artifact_location(self, experiment: str) -> str | None:
        """Next to the SQLite file, not in whatever directory the job was started from."""
        if not self.uri.startswith("sqlite:///"):
            return None
        slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment).strip("_") or "experiment"
        return (Path(self.uri[len("sqlite:///") :]).parent / "mlartifacts" / slug).as_uri()

    def start_run(
        self, experiment_id: str, name: str, tags: Mapping[str, str], parent_run_id: str | None = None,
        start_time: int | None = None,
    ) -> str:
        """`start_time` (ms since the epoch) keeps a run's original time when `medprobe sync` recreates it."""
        all_tags = {**NEUTRAL_SYSTEM_TAGS, **tags}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(experiment_id, start_time=start_time, tags=all_tags, run_name=name)
        return run.info.run_id

    def log(self, run_id: str, metrics: Mapping[str, float] | None = None,
            params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None, step: int = 0,
            timestamp: int | None = None) -> None:
        """One batched call; NaN and infinite metrics are dropped (the notes say why they are missing)."""
        now = timestamp or get_current_time_millis()
        metric_entities = [
            Metric(key, float(value), now, step)
            for key, value in (metrics or {}).items()
            if value is not None and math.isfinite(float(value))
        ]
        param_entities = [Param(key, str(value)[:6000]) for key, value in (params or {}).items()]
        tag_entities = [RunTag(key, str(value)[:5000]) for key, value in (tags or {}).items()]
        for start in range(0, max(len(metric_entities), 1), 900):
            self.client.log_batch(
                run_id,
                metrics=metric_entities[start : start + 900],
                params=param_entities if start == 0 else [],
                tags=tag_entities if start == 0 else [],
            )

    def log_json(self, run_id: str, payload: Any, artifact_file: str) -> None:
        self.client.log_dict(run_id, payload, artifact_file)

    def log_file(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(run_id, str(path), artifact_path)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / Path(artifact_file).name
            target.write_text(text, encoding="utf-8")
            parent = str(Path(artifact_file).parent)
            self.client.log_artifact(run_id, str(target), None if parent == "." else parent)

    def results(self, experiment_id: str, filter_string: str, order_by: list[str] | None = None) -> list[Run]:
        """The runs that count as results: FINISHED, and not superseded by a later attempt at the same job. A
        RUNNING (killed) or FAILED run never hides a finished one."""
        finished = "attributes.status = 'FINISHED'"
        query = f"{filter_string} AND {finished}" if filter_string else finished
        return [run for run in self.search_runs(experiment_id, query, order_by)
                if SUPERSEDED_BY not in run.data.tags]

    def search_runs(self, experiment_id: str, filter_string: str, order_by: list[str] | None = None) -> list[Run]:
        """Every active run of the experiment matching `filter_string`, all pages."""
        runs: list[Run] = []
        token = None
        while True:
            page = self.client.search_runs([experiment_id], filter_string=filter_string,
                                           run_view_type=ViewType.ACTIVE_ONLY, max_results=1000,
                                           order_by=order_by, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def download_artifacts(self, run_id: str, path: str, destination: Path) -> Path:
        return Path(self.client.download_artifacts(run_id, path, str(destination)))

    def finish(self, run_id: str, failed: bool = False) -> None:
        self.terminate(run_id, "FAILED" if failed else "FINISHED")

    def terminate(self, run_id: str, status: str, end_time: int | None = None) -> None:
        """FINISHED, FAILED or KILLED; `end_time` (ms) keeps the original time when a bundle is synced."""
        self.client.set_terminated(run_id, status, end_time=end_time)
