"""The offline results bundle: everything a job would log to MLflow, as plain files a person can review.

A site without outbound network (or whose server is down) still produces its results: the bundle holds one
folder per run (`run.json` with tags, params, metrics and status, plus its artifacts) and a `summary.csv` with a
row per protocol run. Nothing in it identifies a patient: it receives exactly what MLflow would. `medprobe sync`
later recreates the runs on the consortium server; every run carries a `medprobe.run_uid` so a second sync
creates nothing new.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from medprobe import __version__
from medprobe.errors import MedprobeError
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
                  "start_time": datetime.now(UTC).isoformat(timespec="seconds")}
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
        target.write_text(text, encoding="utf-8")

    def log_file(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        name = f"{artifact_path}/{path.name}" if artifact_path else path.name
        shutil.copyfile(path, self._artifact_path(run_id, name))

    def finish(self, run_id: str, failed: bool = False) -> None:
        record = self.run(run_id)
        record["status"] = "FAILED" if failed else "FINISHED"
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
        pd.DataFrame(rows).to_csv(path, index=False)
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


def open_bundle(root: Path) -> ResultsBundle:
    manifest = root / MANIFEST
    if not manifest.is_file():
        raise MedprobeError(f"{root}: not a medprobe results bundle (no {MANIFEST})")
    version = json.loads(manifest.read_text(encoding="utf-8")).get("format")
    if version != BUNDLE_FORMAT:
        raise MedprobeError(f"{root}: bundle format {version} is not supported (expected {BUNDLE_FORMAT})")
    return ResultsBundle(root)


def _write_json(path: Path, payload: Any) -> None:
    """Write then rename, so a bundle never holds half a run record."""
    temporary = path.with_name(f".tmp-{path.name}")
    temporary.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(temporary, path)
