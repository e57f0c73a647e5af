"""`RunRecorder`: the one writer of medprobe runs. Site jobs, `medprobe evaluate`, the federated server and
`medprobe compare` all log through it, so every run gets the same guarantees:

- the URI is normalised once (a relative `sqlite:///x.db` is anchored at the folder it was given in) and shown
  redacted (no credentials, no local folders);
- with a bundle folder, every run also goes to an offline results bundle, and a server that cannot be reached (or
  stops answering) sends the rest of the job to the bundle only; without one, an unreachable server is an error;
- every run carries its identity (`medprobe.run_uid`, what makes `medprobe sync` idempotent), neutral system tags
  and the medprobe version, and is named by `medprobe.tracking.naming`;
- a protocol's result (metrics with their intervals, parameters, notes, pseudonymised predictions) is logged
  the same way whoever produced it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medprobe import __version__
from medprobe.errors import TrackingError
from medprobe.probes.result import ProtocolResult
from medprobe.tracking import naming
from medprobe.tracking.bundle import ResultsBundle
from medprobe.tracking.store import TrackingStore
from medprobe.tracking.tee import SERVER_FAILURES, TeeStore
from medprobe.tracking.uri import normalise_uri, redacted_uri


class RunRecorder:
    """Runs of one experiment, to MLflow and (with `bundle_dir`) to a new results bundle in that folder."""

    def __init__(self, uri: str, experiment: str, bundle_dir: Path | None = None, offline: bool = False,
                 require_server: bool = False, base: Path | None = None) -> None:
        """`base` anchors a relative SQLite URI (default: the current folder). With `require_server`, or without
        a bundle, an unreachable store is a TrackingError, raised before anything is written."""
        self.uri = normalise_uri(uri, base)
        self.display_uri = redacted_uri(self.uri)
        self.experiment = experiment
        online, reason = (None, "--offline") if offline else _connect(self.uri)
        if online is None and (require_server or bundle_dir is None):
            raise TrackingError(f"cannot use the tracking store {self.display_uri}: {reason}")
        bundle = ResultsBundle.new(bundle_dir) if bundle_dir is not None else None
        self.store = TeeStore(bundle, online, reason)
        self.experiment_id = self.store.experiment_id(experiment)

    @property
    def bundle_path(self) -> Path | None:
        return self.store.bundle.root if self.store.bundle is not None else None

    @property
    def offline_reason(self) -> str | None:
        """Why the runs are only in the bundle (None when MLflow received everything)."""
        return self.store.offline_reason

    @property
    def server(self) -> TrackingStore | None:
        """The tracking store while it answers; None offline."""
        return self.store.online

    def server_run_id(self, run: str) -> str | None:
        """MLflow's id of run `run` (a uid), or None when it went only to the bundle."""
        return self.store.server_run_id(run)

    def start_run(self, name: str, tags: Mapping[str, str], parent: str | None = None) -> str:
        """A new run; returns its uid, which every other call takes."""
        return self.store.start_run(self.experiment_id, name, {naming.VERSION: __version__, **tags}, parent)

    def log(self, run: str, metrics: Mapping[str, float] | None = None, params: Mapping[str, Any] | None = None,
            tags: Mapping[str, str] | None = None, step: int = 0) -> None:
        self.store.log(run, metrics, params, tags, step)

    def log_json(self, run: str, payload: Any, artifact_file: str) -> None:
        self.store.log_json(run, payload, artifact_file)

    def log_text(self, run: str, text: str, artifact_file: str) -> None:
        self.store.log_text(run, text, artifact_file)

    def log_file(self, run: str, path: Path, artifact_path: str | None = None) -> None:
        self.store.log_file(run, path, artifact_path)

    def log_result(self, run: str, result: ProtocolResult, notes: Sequence[str] = (),
                   sample_ids: np.ndarray | None = None) -> None:
        """`test/<metric>` metrics (with their intervals), `data/n_train` and `data/n_test`, the parameters,
        `notes.txt` (`notes` then the result's own) and `predictions.csv` with sample pseudonyms and no subject
        column; `sample_ids` are indexed by the predictions' `row`."""
        metrics = {naming.test_metric(k): v for k, v in result.metrics.items()}
        metrics |= {"data/n_train": result.n_train, "data/n_test": result.n_test}
        self.log(run, metrics=metrics, params=result.params)
        all_notes = [*notes, *result.notes]
        if all_notes:
            self.log_text(run, "\n".join(all_notes) + "\n", "notes.txt")
        if not result.predictions.empty:
            predictions = result.predictions.copy()
            if "row" in predictions.columns:
                if sample_ids is not None:
                    predictions.insert(0, "sample_id", sample_ids[predictions["row"].to_numpy()])
                predictions = predictions.drop(columns=["row"])
            predictions = predictions.drop(columns=["subject_id"], errors="ignore")
            self.log_text(run, predictions.to_csv(index=False), "predictions.csv")

    def finish(self, run: str, failed: bool = False) -> None:
        self.store.finish(run, failed)


def _connect(uri: str) -> tuple[TrackingStore | None, str | None]:
    """The MLflow store, or None and the reason when it cannot be reached now."""
    try:
        store = TrackingStore(uri)
        store.client.search_experiments(max_results=1)
    except SERVER_FAILURES as exc:
        return None, f"tracking server unreachable ({type(exc).__name__})"
    return store, None
