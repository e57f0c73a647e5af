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

import hashlib
import hmac
import logging
import os
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd

from medprobe import __version__
from medprobe.errors import TrackingError
from medprobe.privacy.guard import PathGuard
from medprobe.tracking import naming
from medprobe.tracking.bundle import ResultsBundle, close_abandoned
from medprobe.tracking.failures import disk_full, is_connection_failure, store_location
from medprobe.tracking.run_kinds import kind_tags, run_kind
from medprobe.tracking.store import TrackingStore
from medprobe.tracking.tee import TeeStore
from medprobe.tracking.uri import normalise_uri, redacted_uri
from medprobe.tracking.weights_guard import weights_problem

log = logging.getLogger("medprobe.tracking")

#: The offline reason of a recorder asked not to use the server at all.
OFFLINE_REASON = "--offline"
#: The metric of a run some of whose values the guard withheld.
WITHHELD_METRIC = "privacy/withheld_values"
#: Metrics that count rows (`data/n_test`, `data/skipped_inputs`): logged by every run, they are not results.
COUNT_PREFIX = "data/"
#: The test rows, and the subjects among them: the n of a site's result, beside its interval.
N_TEST, N_TEST_SUBJECTS = f"{COUNT_PREFIX}n_test", f"{COUNT_PREFIX}n_test_subjects"


class ResultRecord(Protocol):
    """What `log_result` logs: a protocol's outcome as plain values (`medprobe.probes.ProtocolResult` is one), so
    that tracking knows nothing of the protocols themselves."""

    metrics: dict[str, float]
    predictions: pd.DataFrame
    params: dict[str, str | float | int]
    n_train: int
    n_test: int
    notes: list[str]
    flags: list[str]

    @property
    def n_test_subjects(self) -> int | None: ...


class RunRecorder:
    """Runs of one experiment, to MLflow and (with `bundle_dir`) to a new results bundle in that folder.

    With `job` (an identity, see `job_identity`), the recorder is one attempt at that job: starting, it closes as
    KILLED the runs an earlier attempt left RUNNING (a SIGKILL cannot mark its own); `close()` marks the finished
    runs of earlier attempts that this attempt repeated (same run name) `medprobe.superseded_by`, so that readers
    (`TrackingStore.results`) see each result once. Used as a context manager, an exception or signal that ends
    the job marks this attempt's open runs KILLED before it propagates. `guard` checks everything before it is
    logged (`medprobe.privacy.guard`): a value that holds a word of a local name is withheld, never the job
    ended; a run that had values withheld gets the metric `privacy/withheld_values` and a note (`privacy.txt`).
    """

    def __init__(self, uri: str, experiment: str, bundle_dir: Path | None = None, offline: bool = False,
                 require_server: bool = False, job: str | None = None, guard: PathGuard | None = None) -> None:
        """A relative SQLite URI is read from the current folder (a job spec's is anchored when it is loaded). With
        `require_server`, or without a bundle, an unreachable store is a TrackingError, raised before anything is
        written."""
        self.uri = normalise_uri(uri)
        self.display_uri = redacted_uri(self.uri)
        self.experiment = experiment
        self.job, self.attempt, self.guard = job, uuid.uuid4().hex, guard
        self.failed_runs: list[str] = []
        self.withheld: Counter[str | None] = Counter()  # run uid → values the guard withheld
        self._names: dict[str, str] = {}
        self._kinds: dict[str, str] = {}
        self._parents: dict[str, str | None] = {}
        self._scored: set[str] = set()  # runs that logged a metric besides the `data/` counts
        online, reason = (None, OFFLINE_REASON) if offline else _connect(self.uri)
        if online is None and (require_server or bundle_dir is None):
            raise TrackingError(f"cannot use the tracking store {self.display_uri}: {reason}")
        if bundle_dir is not None and job is not None:
            close_abandoned(bundle_dir)
        bundle = ResultsBundle.new(bundle_dir) if bundle_dir is not None else None
        self.store = TeeStore(bundle, online, reason)
        self.experiment_id = self.store.experiment_id(experiment)
        self._close_abandoned()

    def __enter__(self) -> RunRecorder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        if kind is None:
            self.close()
        else:
            self.store.kill_open_runs()

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

    def start_run(self, kind: str, name: str, tags: Mapping[str, str], parent: str | None = None) -> str:
        """A new run of `kind` (`medprobe.tracking.run_kinds`: its tag, required tags and parent kind are checked);
        returns its uid, which every other call takes."""
        kind_tagged = kind_tags(run_kind(kind), tags, self._kinds[parent] if parent is not None else None)
        identity = {naming.JOB: self.job, naming.ATTEMPT: self.attempt} if self.job else {}
        name, all_tags = self._guarded(None, name), self._guarded(None, {naming.VERSION: __version__, **identity,
                                                                           **kind_tagged})
        run = self.store.start_run(self.experiment_id, name, all_tags, parent)
        self._names[run], self._kinds[run], self._parents[run] = name, kind, parent
        self.withheld[run] += self.withheld.pop(None, 0)  # withheld before the run had a uid
        return run

    def log(self, run: str, metrics: Mapping[str, float] | None = None, params: Mapping[str, Any] | None = None,
            tags: Mapping[str, str] | None = None, step: int = 0) -> None:
        """Metric keys, parameters and tags go through the guard (a leaking key drops its entry)."""
        metrics, params, tags = self._guarded(run, metrics), self._guarded(run, params), self._guarded(run, tags)
        if metrics and any(not key.startswith(COUNT_PREFIX) for key in metrics):
            self._scored.add(run)
        self.store.log(run, metrics, params, tags, step)

    def log_json(self, run: str, payload: Any, artifact_file: str) -> None:
        self.store.log_json(run, self._guarded(run, payload), artifact_file)

    def log_text(self, run: str, text: str, artifact_file: str) -> None:
        self.store.log_text(run, self._guarded(run, text, PathGuard.lines), artifact_file)

    def log_file(self, run: str, path: Path, artifact_path: str | None = None) -> None:
        """A text file that leaks is logged as a copy with the leaking values withheld (same name); model weights
        are never uploaded (`weights_guard`): that one file is left out with a warning, the run goes on."""
        problem = weights_problem(path)
        if problem is not None:
            log.warning("not uploading %s: it is %s; model weights never leave the site (their licences may forbid "
                        "it, and a site's own weights are the site's)", path.name, problem)
            return
        redacted = self._guarded(run, path, PathGuard.file) if self.guard is not None else None
        if redacted is None:
            self.store.log_file(run, path, artifact_path)
            return
        with tempfile.TemporaryDirectory(prefix="medprobe-withheld-") as folder:
            copy = Path(folder) / path.name
            copy.write_bytes(redacted)
            self.store.log_file(run, copy, artifact_path)

    def log_result(self, run: str, result: ResultRecord, notes: Sequence[str] = (),
                   sample_ids: np.ndarray | None = None) -> None:
        """`test/<metric>` metrics (with their intervals), `data/n_train` and `data/n_test`, the parameters,
        `notes.txt` (`notes` then the result's own) and `predictions.csv` with sample pseudonyms and no subject
        column; `sample_ids` are indexed by the predictions' `row`."""
        metrics = {naming.test_metric(k): v for k, v in result.metrics.items()}
        metrics |= {f"{COUNT_PREFIX}n_train": result.n_train, N_TEST: result.n_test}
        if result.n_test_subjects is not None:
            metrics[N_TEST_SUBJECTS] = result.n_test_subjects
        self.log(run, metrics=metrics, params=result.params,
                 tags={naming.FLAGS: "; ".join(result.flags)} if result.flags else None)
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

    def finish(self, run: str, failed: bool | None = None) -> None:
        """End `run`, FAILED when `failed`, or by its kind's rule when None (`medprobe.tracking.run_kinds`)."""
        if failed is None:
            failed = self._fails_by_rule(run)
        count = self.withheld[run]
        if count:
            self.store.log(run, {WITHHELD_METRIC: count}, None, None, 0)
            self.store.log_text(run, f"{count} value(s) of this run were withheld because they held a word of a "
                                     "local file or folder name (medprobe.privacy.guard)\n", "privacy.txt")
            log.warning("%d value(s) of run %s were withheld: they held a word of a local file or folder name",
                        count, self._names.get(run, run))
        if failed:
            self.failed_runs.append(self._names.get(run, run))
        self.store.finish(run, failed)

    def _fails_by_rule(self, run: str) -> bool:
        kind = run_kind(self._kinds[run])
        if kind.needs_metrics:
            return run not in self._scored
        if kind.judged_by_children:
            return not any(child in self._scored for child, parent in self._parents.items() if parent == run)
        return False

    def close(self) -> None:
        """The attempt ended normally: the finished runs of earlier attempts that this one repeated are marked
        superseded (MLflow only: a bundle holds one attempt)."""
        server = self.store.online
        if server is None or self.job is None:
            return
        repeated = {name for run, name in self._names.items() if run not in self.store.open_runs}
        query = f"tags.`{naming.JOB}` = '{self.job}' AND attributes.status = 'FINISHED'"
        try:
            for run in server.search_runs(server.experiment_id(self.experiment), query):
                tags = run.data.tags
                if tags.get(naming.ATTEMPT) != self.attempt and naming.SUPERSEDED_BY not in tags and \
                        run.info.run_name in repeated:
                    server.client.set_tag(run.info.run_id, naming.SUPERSEDED_BY, self.attempt)
        except Exception as exc:
            if not is_connection_failure(exc):
                raise
            # The runs themselves were delivered; only the marks are missing, and readers still prefer the newest.
            log.warning("tracking server stopped answering (%s) while marking superseded runs", type(exc).__name__)

    def _close_abandoned(self) -> None:
        """Runs of this job an earlier attempt left RUNNING on the server: KILLED now."""
        server = self.store.online
        if server is None or self.job is None:
            return
        query = f"tags.`{naming.JOB}` = '{self.job}' AND attributes.status = 'RUNNING'"
        for run in server.search_runs(server.experiment_id(self.experiment), query):
            server.terminate(run.info.run_id, "KILLED")

    def _guarded(self, run: str | None, value: Any, check: Callable[[PathGuard, Any], Any] = PathGuard.value) -> Any:
        """`value` through the guard (`check`: values, text lines or a file), what it withheld counted for `run`."""
        if self.guard is None or value is None:
            return value
        before = self.guard.withheld
        checked = check(self.guard, value)
        self.withheld[run] += self.guard.withheld - before
        return checked


def job_identity(experiment: str, site: str, pipeline: str, workdir: Path, salt: bytes) -> str:
    """Which job a run belongs to, across attempts: the same spec re-run on the same workdir. A keyed hash with the
    site's salt, so that the workdir's path never leaves the site, not even as a digest someone could recompute."""
    text = "\n".join([experiment, site, pipeline, str(Path(workdir).resolve())])
    return hmac.new(salt, text.encode(), hashlib.sha256).hexdigest()[:16]


#: Seconds a job waits for an unreachable tracking server before it goes on with its offline bundle (0: at once).
#: A container started beside its server (compose) sets it, since the server may still be starting.
WAIT_ENVIRONMENT = "MEDPROBE_TRACKING_WAIT_S"


def _connect(uri: str) -> tuple[TrackingStore | None, str | None]:
    """The MLflow store, or None and the reason when it cannot be reached within `MEDPROBE_TRACKING_WAIT_S`."""
    deadline = time.monotonic() + _wait_seconds()
    while True:
        store, reason = _connect_once(uri)
        if store is not None or time.monotonic() >= deadline:
            return store, reason
        log.info("waiting for the tracking server %s: %s", redacted_uri(uri), reason)
        time.sleep(min(5.0, max(0.0, deadline - time.monotonic())))


def _wait_seconds() -> float:
    text = os.environ.get(WAIT_ENVIRONMENT, "0")
    try:
        return max(0.0, float(text))
    except ValueError:
        raise TrackingError(f"{WAIT_ENVIRONMENT} must be a number of seconds, not {text!r}") from None


def _connect_once(uri: str) -> tuple[TrackingStore | None, str | None]:
    """The MLflow store, or None and the reason when it cannot be reached now."""
    try:
        store = TrackingStore(uri)
        store.client.search_experiments(max_results=1)
    except TrackingError:
        raise
    except Exception as exc:  # noqa: BLE001 - sorted below: lost connection, full disk, or a store error
        full = disk_full(exc, store_location(uri))
        if full is not None:
            raise full from None
        if is_connection_failure(exc):
            return None, f"tracking server unreachable ({type(exc).__name__})"
        raise TrackingError(f"cannot use the tracking store {redacted_uri(uri)}: {type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:300] if str(exc) else ''}") from None
    return store, None
