"""`medprobe sync BUNDLE --to URI`: recreate a bundle's runs on a tracking server, idempotently.

Each run is matched on its `medprobe.run_uid` tag: a finished run already on the server is skipped, a run the
job started there before the connection dropped is completed, and a missing one is created.
"""

from __future__ import annotations

from dataclasses import dataclass
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
        if existing:
            run_id = existing[0].info.run_id
            already = existing[0].data.params
            report.completed += 1
        else:
            parent = server_ids.get(record["parent"]) if record["parent"] else None
            run_id = store.start_run(experiment, record["name"], record["tags"], parent)
            already = {}
            report.created += 1
        server_ids[record["uid"]] = run_id
        params = {k: v for k, v in record["params"].items() if k not in already}
        store.log(run_id, metrics=record["metrics"], params=params, tags=record["tags"])
        artifacts_root = root / "runs" / record["uid"] / "artifacts"
        for artifact in bundle.artifacts(record["uid"]):
            folder = artifact.parent.relative_to(artifacts_root)
            store.log_file(run_id, artifact, None if str(folder) == "." else str(folder))
        if record["status"] in TERMINAL:
            store.finish(run_id, failed=record["status"] != "FINISHED")
    return report
