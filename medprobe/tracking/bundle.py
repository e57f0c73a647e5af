"""The offline results bundle: everything a job would log to MLflow, as plain files a person can review.

A site without outbound network (or whose server is down) still produces its results: the bundle holds one
folder per run (`run.json` with tags, params, metrics and status, plus its artifacts) and a `summary.csv` with a
row per protocol run. Nothing in it identifies a patient: it receives exactly what MLflow would. `medprobe sync`
later recreates the runs on the consortium server; every run carries a `medprobe.run_uid` so a second sync
creates nothing new.
"""

from __future__ import annotations

import errno
import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from medprobe import __version__
from medprobe.errors import DiskFullError, MedprobeError
from medprobe.tracking import naming

BUNDLE_FORMAT = 1
MANIFEST = "bundle.json"


class ResultsBundle:
    """Writes a bundle with the same calls as `TrackingStore`; run ids are the runs' uids."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "runs").mkdir(parents=True, exist_ok=True)
        if not (root / MANIFEST).exists():
            _write_json(root / MANIFEST, {"format": BUNDLE_FORMAT, "medprobe_version": __version__,
                                          "created": datetime.now(UTC).isoformat(timespec="seconds")})

    @classmethod
    def new(cls, parent: Path) -> ResultsBundle:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return cls(parent / f"{stamp}-{uuid.uuid4().hex[:6]}")

    def experiment_id(self, name: str) -> str:
        return name

    def start_run(self, experiment_id: str, name: str, tags: Mapping[str, str],
                  parent_run_id: str | None = None) -> str:
        uid = uuid.uuid4().hex
        record = {"uid": uid, "experiment": experiment_id, "name": name, "parent": parent_run_id,
                  "tags": {**tags, naming.RUN_UID: uid}, "params": {}, "metrics": {}, "status": "RUNNING",
                  "start_time": datetime.now(UTC).isoformat(timespec="milliseconds")}
        self._save(uid, record)
        return uid

    def log(self, run_id: str, metrics: Mapping[str, float] | None = None,
            params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None) -> None:
        record = self.run(run_id)
        record["metrics"] |= {k: float(v) for k, v in (metrics or {}).items()
                              if v is not None and math.isfinite(float(v))}
        record["params"] |= {k: str(v) for k, v in (params or {}).items()}
        record["tags"] |= {k: str(v) for k, v in (tags or {}).items()}
        self._save(run_id, record)

    def log_json(self, run_id: str, payload: Any, artifact_file: str) -> None:
        self.log_text(run_id, json.dumps(payload, indent=2, sort_keys=True, default=str), artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        target = self._artifact_path(run_id, artifact_file)
        with written(target, len(text.encode())):
            target.write_text(text, encoding="utf-8")

    def log_file(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        name = f"{artifact_path}/{path.name}" if artifact_path else path.name
        target = self._artifact_path(run_id, name)
        with written(target, path.stat().st_size):
            shutil.copyfile(path, target)

    def finish(self, run_id: str, failed: bool = False) -> None:
        self.terminate(run_id, "FAILED" if failed else "FINISHED")

    def terminate(self, run_id: str, status: str) -> None:
        """FINISHED, FAILED or KILLED, with the time (kept by `medprobe sync`)."""
        record = self.run(run_id)
        record["status"] = status
        record["end_time"] = datetime.now(UTC).isoformat(timespec="milliseconds")
        self._save(run_id, record)
        self.write_summary()

    def run(self, uid: str) -> dict[str, Any]:
        return json.loads((self.root / "runs" / uid / "run.json").read_text(encoding="utf-8"))

    def runs(self) -> Iterator[dict[str, Any]]:
        """Every run, parents before their children."""
        records = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(self.root.glob("runs/*/run.json"))]
        yield from sorted(records, key=lambda r: (r["parent"] is not None, r["start_time"]))

    def artifacts(self, uid: str) -> list[Path]:
        folder = self.root / "runs" / uid / "artifacts"
        return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []

    def write_summary(self) -> Path:
        """`summary.csv`: one row per protocol and transfer run with its key tags and metrics, for a person to
        review (`train_site` is filled for transfer runs: the site whose head was scored here)."""
        rows = []
        for record in self.runs():
            tags = record["tags"]
            if tags.get(naming.RUN_KIND) not in ("protocol", "transfer"):
                continue
            rows.append({"experiment": record["experiment"], "site": tags.get(naming.SITE),
                         "model": tags.get(naming.MODEL), "task": tags.get(naming.TASK),
                         "protocol": tags.get(naming.PROTOCOL), "train_site": tags.get(naming.TRAIN_SITE),
                         "status": record["status"], **record["metrics"]})
        path = self.root / "summary.csv"
        text = pd.DataFrame(rows).to_csv(index=False)
        with written(path, len(text.encode())):
            path.write_text(text, encoding="utf-8")
        return path

    def _artifact_path(self, uid: str, artifact_file: str) -> Path:
        relative = Path(artifact_file)
        if relative.is_absolute() or ".." in relative.parts:
            raise MedprobeError(f"artifact name must be a relative path inside the run: {artifact_file!r}")
        target = self.root / "runs" / uid / "artifacts" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def _save(self, uid: str, record: dict[str, Any]) -> None:
        folder = self.root / "runs" / uid
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / "run.json", record)


def close_abandoned(parent: Path) -> int:
    """Mark KILLED the runs that bundles under `parent` still hold as RUNNING: their job was killed (a job that
    stops on a signal marks its own). Called when the same job starts again, so a later sync never recreates them
    as running; returns how many there were."""
    closed = 0
    for run_json in sorted(parent.glob("*/runs/*/run.json")):
        record = json.loads(run_json.read_text(encoding="utf-8"))
        if record.get("status") == "RUNNING":
            bundle = ResultsBundle(run_json.parents[2])
            bundle.terminate(record["uid"], "KILLED")
            closed += 1
    return closed


def open_bundle(root: Path) -> ResultsBundle:
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise MedprobeError(f"{root}: not a medprobe results bundle (no {MANIFEST})")
    version = json.loads(manifest.read_text(encoding="utf-8")).get("format")
    if version != BUNDLE_FORMAT:
        raise MedprobeError(f"{root}: bundle format {version} is not supported (expected {BUNDLE_FORMAT})")
    return ResultsBundle(root)


@contextmanager
def written(target: Path, size: int) -> Iterator[None]:
    """A write of `size` bytes to `target`: on a full disk the partial file is removed and the job stops with a
    DiskFullError naming the folder, instead of a bundle holding half an artifact."""
    try:
        yield
    except OSError as exc:
        target.unlink(missing_ok=True)
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(f"{target.parent}: no space left on the device writing the results bundle "
                                f"({size} bytes needed); free space and re-run") from None
        raise


def _write_json(path: Path, payload: Any) -> None:
    """Write then rename, so a bundle never holds half a run record."""
    temporary = path.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")
    text = json.dumps(payload, indent=2, sort_keys=True, default=str)
    with written(temporary, len(text.encode())):
        temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
