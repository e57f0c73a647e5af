"""`medprobe sync BUNDLE --to URI`: recreate a bundle's runs on a tracking server, idempotently.

The bundle is checked against its seal (`medprobe.tracking.bundle.verify`) before anything is sent: a damaged
bundle is refused whole, so that a server never holds half of one or a changed result. Each run is then matched on
its `medprobe.run_uid` tag, looked up right before it would be created: a finished run already on the server is
skipped, a run the job started there before the connection dropped is completed, and a missing one is created with
its original times.

Two syncs of one bundle at the same time: MLflow has no unique constraint on tags, so a look-up followed by a create
is not atomic, and two syncs that both look up before either creates would both create. On one machine (or one
shared filesystem with working locks) the caller prevents that by holding the bundle's lock for the whole sync
(`medprobe sync` does: `medprobe.cli.sync_command`). Copies of one bundle synced from two machines at the same
moment can still, rarely, create a run twice: the look-up only narrows that window to the time between one
search and one create. Such a duplicate carries the same `medprobe.run_uid` as its twin, so it can be found and
deleted; sync copies of one bundle from one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from mlflow.entities import Run, ViewType

from medprobe.tracking import naming
from medprobe.tracking.bundle import UnsealedBundleError, open_bundle, verify
from medprobe.tracking.store import TrackingStore
from medprobe.tracking.uri import normalise_uri

TERMINAL = frozenset({"FINISHED", "FAILED", "KILLED"})


@dataclass
class SyncReport:
    created: int = 0
    completed: int = 0
    skipped: int = 0
    #: False when the bundle had no seal and was synced unchecked (`accept_unverified`).
    verified: bool = True


def sync_bundle(root: Path, uri: str, accept_unverified: bool = False) -> SyncReport:
    """Recreate the bundle's runs on the store at `uri`, with their original start and end times, so that an older
    result never looks newer than a later online run of the same job. A run the job started on the server before
    the connection dropped is completed with what the server lacks (no metric is logged twice); a run the bundle
    still holds as RUNNING belonged to a killed job and arrives KILLED.

    Every file is checked first: a DamagedBundleError (exit 2) names the file, and nothing is sent. A bundle with
    no seal (its job was killed outright, or an older medprobe wrote it) is an UnsealedBundleError unless
    `accept_unverified`. Concurrent callers must hold the bundle's lock (see the module docstring)."""
    report = SyncReport(verified=_verified(root, accept_unverified))
    bundle = open_bundle(root)
    store = TrackingStore(normalise_uri(uri))
    server_ids: dict[str, str] = {}
    experiments: dict[str, str] = {}
    for record in bundle.runs():
        if record["experiment"] not in experiments:
            experiments[record["experiment"]] = store.experiment_id(record["experiment"])
        experiment = experiments[record["experiment"]]
        existing = _on_server(store, experiment, record["uid"])  # looked up right before a create
        if existing is not None and existing.info.status in TERMINAL:
            server_ids[record["uid"]] = existing.info.run_id
            report.skipped += 1
            continue
        if existing is None:
            parent = server_ids.get(record["parent"]) if record["parent"] else None
            run_id = store.start_run(experiment, record["name"], record["tags"], parent,
                                     start_time=_millis(record.get("start_time")))
            report.created += 1
        else:
            run_id = existing.info.run_id
            report.completed += 1
        server_ids[record["uid"]] = run_id
        _replay(store, run_id, record, existing, bundle.artifacts(record["uid"]), root)
    return report


def _verified(root: Path, accept_unverified: bool) -> bool:
    """Whether the bundle was checked against its seal; raises for a damaged one, and for an unsealed one unless
    `accept_unverified`."""
    try:
        verify(root)
    except UnsealedBundleError:
        if not accept_unverified:
            raise
        return False
    return True


def _on_server(store: TrackingStore, experiment: str, uid: str) -> Run | None:
    """The server's run with this identity (deleted runs included: a run someone deleted is not sent again)."""
    found = store.client.search_runs([experiment], filter_string=f"tags.`{naming.RUN_UID}` = '{uid}'",
                                     run_view_type=ViewType.ALL, max_results=1)
    return found[0] if found else None


def _replay(store: TrackingStore, run_id: str, record: dict[str, Any], existing: Run | None,
            artifacts: list[Path], root: Path) -> None:
    """Send what the server's run lacks of `record` (all of it for a new run), its artifacts, and its end."""
    started, ended = _millis(record.get("start_time")), _millis(record.get("end_time"))
    params_there = existing.data.params if existing else {}
    metrics_there = existing.data.metrics if existing else {}
    params = {k: v for k, v in record["params"].items() if k not in params_there}
    metrics = {k: v for k, v in record["metrics"].items() if metrics_there.get(k) != v}
    store.log(run_id, metrics=metrics, params=params, tags=record["tags"], timestamp=ended or started)
    artifacts_root = root / "runs" / record["uid"] / "artifacts"
    for artifact in artifacts:
        folder = artifact.parent.relative_to(artifacts_root)
        store.log_file(run_id, artifact, None if str(folder) == "." else str(folder))
    status = record["status"] if record["status"] in TERMINAL else "KILLED"
    store.terminate(run_id, status, end_time=ended or started)


def _millis(iso: str | None) -> int | None:
    """Milliseconds since the epoch of a bundle's ISO time (None when the record has none)."""
    if not iso:
        return None
    return int(datetime.fromisoformat(iso).timestamp() * 1000)
