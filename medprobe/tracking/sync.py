"""`medprobe sync BUNDLE --to URI`: recreate a bundle's runs on a tracking server, idempotently.

Each run is matched on its `medprobe.run_uid` tag: a finished run already on the server is skipped, a run the
job started there before the connection dropped is completed, and a missing one is created with its original times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mlflow.entities import ViewType

from medprobe.tracking import naming
from medprobe.tracking.bundle import open_bundle
from medprobe.tracking.store import TrackingStore
from medprobe.tracking.uri import normalise_uri

TERMINAL = frozenset({"FINISHED", "FAILED", "KILLED"})


@dataclass
class SyncReport:
    created: int = 0
    completed: int = 0
    skipped: int = 0


def sync_bundle(root: Path, uri: str) -> SyncReport:
    """Recreate the bundle's runs on the store at `uri`, with their original start and end times, so that an older
    result never looks newer than a later online run of the same job. A run the job started on the server before
    the connection dropped is completed with what the server lacks (no metric is logged twice); a run the bundle
    still holds as RUNNING belonged to a killed job and arrives KILLED."""
    bundle = open_bundle(root)
    store = TrackingStore(normalise_uri(uri))
    report = SyncReport()
    server_ids: dict[str, str] = {}
    experiments: dict[str, str] = {}
    for record in bundle.runs():
        experiment = experiments.setdefault(record["experiment"], store.experiment_id(record["experiment"]))
        existing = store.client.search_runs(
            [experiment], filter_string=f"tags.`{naming.RUN_UID}` = '{record['uid']}'",
            run_view_type=ViewType.ALL, max_results=1,
        )
        if existing and existing[0].info.status in TERMINAL:
            server_ids[record["uid"]] = existing[0].info.run_id
            report.skipped += 1
            continue
        started, ended = _millis(record.get("start_time")), _millis(record.get("end_time"))
        if existing:
            run_id = existing[0].info.run_id
            params_there, metrics_there = existing[0].data.params, existing[0].data.metrics
            report.completed += 1
        else:
            parent = server_ids.get(record["parent"]) if record["parent"] else None
            run_id = store.start_run(experiment, record["name"], record["tags"], parent, start_time=started)
            params_there, metrics_there = {}, {}
            report.created += 1
        server_ids[record["uid"]] = run_id
        params = {k: v for k, v in record["params"].items() if k not in params_there}
        metrics = {k: v for k, v in record["metrics"].items() if metrics_there.get(k) != v}
        store.log(run_id, metrics=metrics, params=params, tags=record["tags"], timestamp=ended or started)
        artifacts_root = root / "runs" / record["uid"] / "artifacts"
        for artifact in bundle.artifacts(record["uid"]):
            folder = artifact.parent.relative_to(artifacts_root)
            store.log_file(run_id, artifact, None if str(folder) == "." else str(folder))
        status = record["status"] if record["status"] in TERMINAL else "KILLED"
        store.terminate(run_id, status, end_time=ended or started)
    return report


def _millis(iso: str | None) -> int | None:
    """Milliseconds since the epoch of a bundle's ISO time (None when the record has none)."""
    if not iso:
        return None
    return int(datetime.fromisoformat(iso).timestamp() * 1000)
