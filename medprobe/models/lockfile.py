"""The weights lock: what `medprobe models fetch` downloaded, written beside the files, and re-checked by `medprobe
models verify` on a node without network. Reading and hashing only: no network code here (that is `fetch.py`).

The lock (`medprobe-weights.lock.json`, JSON) holds the model, where the files came from (hub repository and the
commit its revision resolved to, or the URL), the medprobe version, the UTC time of the fetch, what a spec's
`weights:` should name (relative to the folder), and per file its relative path, size and sha256. It is written
last and atomically, so a folder with a lock is complete: a fetch that failed or was killed leaves none.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from medprobe.errors import WeightsError
from medprobe.models.weights import sha256_of

LOCK_NAME = "medprobe-weights.lock.json"
LOCK_FORMAT = "medprobe-weights-lock/1"


@dataclass(frozen=True)
class LockedFile:
    #: Relative to the lock's folder, '/'-separated.
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class WeightsLock:
    model: str
    #: `{"hub": "<org>/<name>", "revision": "<as asked>", "commit": "<sha it resolved to>", "endpoint": "<url>"}` or
    #: `{"url": "https://..."}`.
    source: dict[str, str]
    #: What a spec's `weights:` names, relative to the folder: a file, or "." for the folder itself.
    weights: str
    files: tuple[LockedFile, ...]
    medprobe_version: str
    fetched_at: str
    format: str = field(default=LOCK_FORMAT)

    @staticmethod
    def origin_of(model: str, source: dict[str, str]) -> tuple[str, ...]:
        """Model and source identity: the same hub commit (from any endpoint) or the same URL."""
        if "hub" in source:
            return (model, "hub", source["hub"], source.get("commit", ""))
        return (model, "url", source.get("url", ""))

    def origin(self) -> tuple[str, ...]:
        return self.origin_of(self.model, self.source)

    def content(self) -> dict[str, tuple[int, str]]:
        return {f.path: (f.size, f.sha256) for f in self.files}

    def describe_source(self) -> str:
        return describe_source(self.source)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["files"] = [asdict(f) for f in self.files]
        return {"format": data.pop("format"), **data}

    @classmethod
    def from_json(cls, data: Any, where: Path) -> WeightsLock:
        try:
            if data.get("format") != LOCK_FORMAT:
                raise ValueError(f"format {data.get('format')!r}, expected {LOCK_FORMAT!r}")
            files = tuple(LockedFile(path=_safe_relative(f["path"]), size=int(f["size"]), sha256=str(f["sha256"]))
                          for f in data["files"])
            return cls(model=str(data["model"]), source={str(k): str(v) for k, v in data["source"].items()},
                       weights=_safe_relative(data["weights"]), files=files,
                       medprobe_version=str(data["medprobe_version"]), fetched_at=str(data["fetched_at"]))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"{where}: not a valid medprobe weights lock ({type(exc).__name__}: {exc}); fetch "
                               "the model again with `medprobe models fetch`") from None


def describe_source(source: dict[str, str]) -> str:
    if "hub" in source:
        return f"hub {source['hub']} at {source.get('revision', '?')} (commit {source.get('commit', '?')})"
    return source.get("url", "?")


def _safe_relative(path: Any) -> str:
    pure = PurePosixPath(str(path))
    if pure.is_absolute() or ".." in pure.parts or str(path) == "":
        raise ValueError(f"path {path!r} is not inside the folder")
    return str(pure)


def read_lock(folder: Path) -> WeightsLock | None:
    """The lock in `folder`, None when there is none; an unreadable lock is an error naming it."""
    path = folder / LOCK_NAME
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: unreadable weights lock ({type(exc).__name__}: {exc})") from None
    return WeightsLock.from_json(data, path)


def write_lock(folder: Path, lock: WeightsLock) -> Path:
    """Write the lock atomically (a temporary file, flushed, then renamed): a reader sees the whole lock or none."""
    path = folder / LOCK_NAME
    handle, temporary = tempfile.mkstemp(prefix=f".{LOCK_NAME}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(lock.to_json(), out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def hash_files(folder: Path, paths: list[str]) -> tuple[LockedFile, ...]:
    return tuple(LockedFile(path=p, size=(folder / p).stat().st_size, sha256=sha256_of(folder / p))
                 for p in sorted(paths))


@dataclass(frozen=True)
class Verification:
    folder: Path
    lock: WeightsLock
    ok: list[str]
    #: (path, what differs) for each file whose size or sha256 differs from the lock.
    mismatched: list[tuple[str, str]]
    missing: list[str]
    #: Files in the folder that the lock does not list: a warning, not a failure.
    extra: list[str]

    @property
    def passed(self) -> bool:
        return not self.mismatched and not self.missing


def verify_folder(folder: Path) -> Verification:
    """Re-hash every file the lock lists; name each missing or different file and each file it does not list."""
    lock = read_lock(folder)
    if lock is None:
        raise WeightsError(f"{folder}: no {LOCK_NAME} there; was it written by `medprobe models fetch`?")
    ok: list[str] = []
    mismatched: list[tuple[str, str]] = []
    missing: list[str] = []
    for entry in lock.files:
        path = folder / entry.path
        if not path.is_file():
            missing.append(entry.path)
            continue
        size, sha = path.stat().st_size, sha256_of(path)
        if sha == entry.sha256 and size == entry.size:
            ok.append(entry.path)
        else:
            sizes = f", {size} bytes ≠ lock {entry.size}" if size != entry.size else ""
            mismatched.append((entry.path, f"sha256 {sha[:12]}… ≠ lock {entry.sha256[:12]}…{sizes}"))
    listed = {entry.path for entry in lock.files} | {LOCK_NAME}
    extra = sorted(rel for rel in _relative_files(folder) if rel not in listed)
    return Verification(folder=folder, lock=lock, ok=ok, mismatched=mismatched, missing=missing, extra=extra)


def lock_folders(root: Path) -> list[Path]:
    """`root` when it holds a lock, else its immediate subfolders that do (a carried-in folder of several models)."""
    if not root.is_dir():
        raise WeightsError(f"{root}: not a folder")
    if (root / LOCK_NAME).is_file():
        return [root]
    found = sorted(child for child in root.iterdir() if (child / LOCK_NAME).is_file())
    if not found:
        raise WeightsError(f"{root}: no {LOCK_NAME} in it or in its subfolders; `medprobe models fetch` writes one "
                           "beside the files it downloads")
    return found


def _relative_files(folder: Path) -> list[str]:
    return [path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file()]
