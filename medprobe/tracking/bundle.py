"""The offline results bundle: everything a job would log to MLflow, as plain files a person can review.

A site without outbound network (or whose server is down) still produces its results: the bundle holds one
folder per run (`run.json` with tags, params, metrics and status, plus its artifacts) and a `summary.csv` with a
row per protocol run. Nothing in it identifies a patient: it receives exactly what MLflow would. `medprobe sync`
later recreates the runs on the consortium server; every run carries a `medprobe.run_uid` so a second sync
creates nothing new.

A bundle travels (a USB stick, a copy over a flaky link) before it is synced, so a complete bundle is *sealed*:
`digests.json`, written last, holds the sha256 of every other file, and `verify` refuses a bundle that differs
from it in any byte or file. A bundle is complete whenever none of the runs its writer started is still open: the
writer seals it then (when a job ends, normally or on a signal that marks its open runs KILLED) and removes the
seal before it changes anything again, so a seal always describes the whole bundle as it was left. A job killed
outright (SIGKILL, power loss) leaves its bundle unsealed; `close_abandoned` closes and seals it when the same job
starts again. Every file is written under a temporary name and renamed, so even an unsealed bundle holds only
whole files (and at most a `.tmp-*` leftover, which sealing removes).
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from medprobe import __version__
from medprobe.errors import DiskFullError, MedprobeError
from medprobe.tracking import naming
from medprobe.tracking.run_kinds import PROTOCOL, TRANSFER

BUNDLE_FORMAT = 1
MANIFEST = "bundle.json"
#: The seal: sha256 of every file of the bundle but itself and `SYNC_LOCK`, written last.
DIGESTS = "digests.json"
#: The lock file `medprobe sync` holds in the bundle (`medprobe.jobs.workdir_lock.LOCK_FILE`): never sealed.
SYNC_LOCK = ".medprobe.lock"
TEMPORARY_PREFIX = ".tmp-"
_CHUNK = 1 << 20


class DamagedBundleError(MedprobeError):
    """A file of a sealed bundle was changed, truncated, removed or added after the job sealed it."""


class UnsealedBundleError(MedprobeError):
    """The bundle has no `digests.json`: its job was killed outright, or an older medprobe wrote it."""


class ResultsBundle:
    """Writes a bundle with the same calls as `TrackingStore`; run ids are the runs' uids. Seals the bundle each
    time no run this writer started is open any more (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._open: set[str] = set()
        (root / "runs").mkdir(parents=True, exist_ok=True)
        if not (root / MANIFEST).exists():
            with self._changing():
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
        with self._changing():
            self._open.add(uid)
            self._save(uid, record)
        return uid

    def log(self, run_id: str, metrics: Mapping[str, float] | None = None,
            params: Mapping[str, Any] | None = None, tags: Mapping[str, str] | None = None) -> None:
        record = self.run(run_id)
        record["metrics"] |= {k: float(v) for k, v in (metrics or {}).items()
                              if v is not None and math.isfinite(float(v))}
        record["params"] |= {k: str(v) for k, v in (params or {}).items()}
        record["tags"] |= {k: str(v) for k, v in (tags or {}).items()}
        with self._changing():
            self._save(run_id, record)

    def log_json(self, run_id: str, payload: Any, artifact_file: str) -> None:
        self.log_text(run_id, json.dumps(payload, indent=2, sort_keys=True, default=str), artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        target = self._artifact_path(run_id, artifact_file)
        with self._changing():
            _write_atomically(target, len(text.encode()), lambda temporary: temporary.write_text(text, "utf-8"))

    def log_file(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        name = f"{artifact_path}/{path.name}" if artifact_path else path.name
        target = self._artifact_path(run_id, name)
        with self._changing():
            _write_atomically(target, path.stat().st_size, lambda temporary: shutil.copyfile(path, temporary))

    def finish(self, run_id: str, failed: bool = False) -> None:
        self.terminate(run_id, "FAILED" if failed else "FINISHED")

    def terminate(self, run_id: str, status: str) -> None:
        """FINISHED, FAILED or KILLED, with the time (kept by `medprobe sync`)."""
        record = self.run(run_id)
        record["status"] = status
        record["end_time"] = datetime.now(UTC).isoformat(timespec="milliseconds")
        with self._changing():
            self._open.discard(run_id)
            self._save(run_id, record)
            self._summarise()

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
        with self._changing():
            return self._summarise()

    def _summarise(self) -> Path:
        """`summary.csv`: one row per protocol and transfer run with its key tags and metrics, for a person to
        review (`train_site` is filled for transfer runs: the site whose head was scored here)."""
        rows = []
        for record in self.runs():
            tags = record["tags"]
            if tags.get(naming.RUN_KIND) not in (PROTOCOL, TRANSFER):
                continue
            rows.append({"experiment": record["experiment"], "site": tags.get(naming.SITE),
                         "model": tags.get(naming.MODEL), "task": tags.get(naming.TASK),
                         "protocol": tags.get(naming.PROTOCOL), "train_site": tags.get(naming.TRAIN_SITE),
                         "status": record["status"], **record["metrics"]})
        path = self.root / "summary.csv"
        text = pd.DataFrame(rows).to_csv(index=False)
        _write_atomically(path, len(text.encode()), lambda temporary: temporary.write_text(text, "utf-8"))
        return path

    def seal(self) -> Path:
        """Write `digests.json`: the sha256 of every file (relative paths), made durable before the digests are,
        so that a seal never vouches for a file the disk has not kept. Leftover temporary files of a killed writer
        are removed first: nothing reads them, and a seal must not list them."""
        for leftover in self.root.rglob(f"{TEMPORARY_PREFIX}*"):
            leftover.unlink(missing_ok=True)
        files = {name: _sha256(path, durable=True) for name, path in _sealed_files(self.root)}
        path = self.root / DIGESTS
        _write_json(path, {"algorithm": "sha256", "files": files, "self": _list_digest(files)}, durable=True)
        return path

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """A change to the bundle: the seal goes first (a kill half-way leaves an unsealed bundle, never a wrong
        seal); when no run of this writer is open afterwards, the bundle is complete again and is sealed."""
        (self.root / DIGESTS).unlink(missing_ok=True)
        yield
        if not self._open:
            self.seal()

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
    """Mark KILLED the runs that unsealed bundles under `parent` still hold as RUNNING, and seal those bundles:
    their job was killed outright (a job that stops on a signal marks and seals its own). Called when the same job
    starts again (holding its workdir), so a later sync neither recreates them as running nor refuses them as
    unverified; returns how many runs there were."""
    closed = 0
    for root in sorted(manifest.parent for manifest in parent.glob(f"*/{MANIFEST}")):
        if (root / DIGESTS).exists():
            continue
        bundle = ResultsBundle(root)
        running = [record["uid"] for record in bundle.runs() if record.get("status") == "RUNNING"]
        for uid in running:
            bundle.terminate(uid, "KILLED")  # seals
        if not running:
            bundle.seal()
        closed += len(running)
    return closed


def verify(root: Path) -> None:
    """Check every file of the bundle at `root` against its seal: a DamagedBundleError names the first file that
    was changed, truncated, removed or added (relative to `root`); an UnsealedBundleError when there is no seal."""
    seal = root / DIGESTS
    if not seal.is_file():
        _require_bundle(root)
        raise UnsealedBundleError(
            f"{root}: the bundle has no {DIGESTS}, so it cannot be checked (its job was killed before it finished, "
            "or an older medprobe wrote it); re-run the same job to close and seal it, or pass --accept-unverified "
            "to sync it as it is")
    try:
        payload = json.loads(seal.read_text(encoding="utf-8"))
        expected = payload["files"]
        intact = isinstance(expected, dict) and payload["self"] == _list_digest(expected)
    except (ValueError, KeyError, TypeError):
        intact = False
    if not intact:
        raise _damaged(root, DIGESTS, "is not the digest list the job wrote")
    present = dict(_sealed_files(root))
    for name in sorted(expected.keys() | present.keys()):
        if name not in present:
            raise _damaged(root, name, "is missing")
        if name not in expected:
            raise _damaged(root, name, "was added after the bundle was sealed")
        if _sha256(present[name]) != expected[name]:
            raise _damaged(root, name, "does not match its sha256 digest (changed or truncated)")


def open_bundle(root: Path) -> ResultsBundle:
    """The bundle at `root`, to read (nothing is written): checks that it is one, in a format this medprobe reads;
    its contents are checked by `verify`."""
    _require_bundle(root)
    version = json.loads((root / MANIFEST).read_text(encoding="utf-8")).get("format")
    if version != BUNDLE_FORMAT:
        raise MedprobeError(f"{root}: bundle format {version} is not supported (expected {BUNDLE_FORMAT})")
    return ResultsBundle(root)


def _require_bundle(root: Path) -> None:
    if not (root / MANIFEST).is_file():
        raise MedprobeError(f"{root}: not a medprobe results bundle (no {MANIFEST})")


def _damaged(root: Path, name: str, problem: str) -> DamagedBundleError:
    return DamagedBundleError(
        f"{root}: damaged results bundle: {name} {problem}; nothing was synced. Copy the bundle again from the site "
        "(or re-run the job there) and sync the intact copy")


def _sealed_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Every file a seal covers, by its relative path: all but the seal itself and the sync lock."""
    for path in sorted(root.rglob("*")):
        name = path.relative_to(root).as_posix()
        if name not in (DIGESTS, SYNC_LOCK) and path.is_file():
            yield name, path


def _sha256(path: Path, durable: bool = False) -> str:
    """The file's sha256; with `durable`, its data is also flushed to the disk (fsync works on a read handle)."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
        if durable:
            os.fsync(handle.fileno())
    return digest.hexdigest()


def _list_digest(files: Mapping[str, str]) -> str:
    """The seal's digest of its own list, so that damage to `digests.json` is named as such, not blamed on an
    intact file whose digest it garbled."""
    return hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()


def _fsync(path: Path) -> None:
    with path.open("rb") as handle:
        os.fsync(handle.fileno())


@contextmanager
def written(target: Path, size: int) -> Iterator[None]:
    """A write of `size` bytes to `target`: if it fails (or is interrupted), the partial file is removed; on a full
    disk the job stops with a DiskFullError naming the folder, instead of a bundle holding half an artifact."""
    try:
        yield
    except BaseException as exc:
        target.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise DiskFullError(f"{target.parent}: no space left on the device writing the results bundle "
                                f"({size} bytes needed); free space and re-run") from None
        raise


def _write_atomically(path: Path, size: int, fill: Callable[[Path], object], durable: bool = False) -> None:
    """`fill` a temporary file next to `path`, then rename it into place, so that a bundle never holds half a
    file under a final name, even after a SIGKILL. With `durable`, the file and the rename are fsynced."""
    temporary = path.with_name(f"{TEMPORARY_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}-{path.name}")
    with written(temporary, size):
        fill(temporary)
        if durable:
            _fsync(temporary)
    os.replace(temporary, path)
    if durable:
        _fsync_folder(path.parent)


def _write_json(path: Path, payload: Any, durable: bool = False) -> None:
    text = json.dumps(payload, indent=2, sort_keys=True, default=str)
    _write_atomically(path, len(text.encode()), lambda temporary: temporary.write_text(text, "utf-8"), durable)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: some filesystems cannot fsync a folder)."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
