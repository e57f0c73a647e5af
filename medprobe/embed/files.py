"""Writing files a later run may trust: unique temporary names, fsync-then-rename, and a full disk as a user error.

Every file the embed package writes (cache shards, the embedding table, the tokens file, small records) goes
through `atomic_write`: it is written under a temporary name that no other process can pick (pid + random), made
durable with fsync, then renamed into place, so a final name always holds a whole file. Whatever goes wrong on the
way — a full disk, a kill signal unwinding the stack, a bug — the temporary file is removed; a SIGKILL can leave a
`.tmp-*` file behind, which nothing ever reads. A write that runs out of space (ENOSPC, EDQUOT) becomes a
`DiskFullError` naming the folder and about how much the write needed, instead of a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from medprobe.errors import DiskFullError

TEMPORARY_PREFIX = ".tmp-"
_FULL = (errno.ENOSPC, errno.EDQUOT)


def temporary_for(final: Path) -> Path:
    """A fresh temporary name next to `final`, unique to this process and call (pid + random)."""
    return final.with_name(f"{TEMPORARY_PREFIX}{final.name}.{os.getpid()}-{secrets.token_hex(4)}")


def shard_name(directory: Path, suffix: str) -> Path:
    """A fresh random shard name in `directory`: several writers (ranks, jobs) can share a cache folder."""
    return directory / f"shard-{uuid.uuid4().hex}{suffix}"


@dataclass
class PendingWrite:
    """The temporary file to write, and roughly how many bytes the write needs (the writer may refine it)."""

    path: Path
    needed: int


@contextlib.contextmanager
def atomic_write(final: Path, needed: int, what: str) -> Iterator[PendingWrite]:
    """Write `final` through a temporary file the body fills (`pending.path`); publish it when the body returns.

    On any exception the temporary file is removed and `final` is left as it was; running out of space becomes a
    `DiskFullError` that names `final`'s folder, `what` was being written and `pending.needed`.
    """
    pending = PendingWrite(temporary_for(final), needed)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        yield pending
        publish(pending.path, final)
    except BaseException as exc:
        pending.path.unlink(missing_ok=True)
        if isinstance(exc, OSError) and is_disk_full(exc):
            raise disk_full(final.parent, what, pending.needed) from None
        raise


def publish(temporary: Path, final: Path) -> None:
    """Make a fully written file visible under its final name: fsync, atomic rename, fsync of the folder."""
    with temporary.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, final)
    sync_folder(final.parent)


def sync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (best effort: some filesystems cannot fsync a directory)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC or EDQUOT, from Python's own I/O or from pyarrow (which sets errno and says so in its message)."""
    if isinstance(exc, OSError) and exc.errno in _FULL:
        return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


def disk_full(folder: Path, what: str, needed: int) -> DiskFullError:
    """The one-line error for a write into `folder` that ran out of space."""
    try:
        free = f"{human_bytes(shutil.disk_usage(folder).free)} free"
    except OSError:
        free = "free space unknown"
    return DiskFullError(f"no space left in {folder}: writing {what} needed about {human_bytes(needed)} "
                         f"({free}); free some space or use a folder on a bigger disk, then re-run (finished cache "
                         "shards are kept, nothing half-written is)")


def human_bytes(count: int) -> str:
    size = float(max(count, 0))
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")
