"""One job per workdir at a time: `with hold_workdir(workdir): ...`.

Two jobs writing one workdir would race on its tables, heads and reports, so a job holds an advisory lock on
`workdir/.medprobe.lock` for its duration and a second job refuses at once with `WorkdirBusyError`, naming the
holder (pid, host, start time, which the holder writes into the file).

The lock is `flock` on the open file, which the kernel releases when the holder dies however it dies (SIGKILL
included), so a lock file left by a dead job is simply taken over. The file itself is never deleted (deleting a
flocked file lets two processes lock two different files); its text only describes the holder. The lock's file
descriptor is closed in children forked while it is held (DataLoader workers), so it never outlives the job.

Where a filesystem offers no file locks, the holder's pid and host in the file decide instead (with a warning):
a lock whose pid no longer runs on this host is taken over.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from medprobe.embed.files import disk_full, is_disk_full
from medprobe.errors import MedprobeError

log = logging.getLogger("medprobe.job")

LOCK_FILE = ".medprobe.lock"
#: How long to wait for the holder's details when the lock is held but the file does not (yet) describe a live
#: holder: the holder writes them just after locking.
_DETAILS_WAIT_S = 2.0
_NO_LOCKS = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL)
_HELD: set[int] = set()


class WorkdirBusyError(MedprobeError):
    """Another job holds the workdir; the message names it and what to do."""


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    started: str

    @classmethod
    def me(cls) -> Holder:
        started = datetime.now(timezone.utc).astimezone().isoformat(timespec="seconds")
        return cls(os.getpid(), socket.gethostname(), started)

    def alive(self) -> bool:
        """False only when the holder is known to be gone: its pid no longer runs on this host."""
        if self.host != socket.gethostname():
            return True
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@contextlib.contextmanager
def hold_workdir(workdir: Path) -> Iterator[Holder]:
    """Hold `workdir` for this process for the duration; raise WorkdirBusyError when another job holds it."""
    path = workdir / LOCK_FILE
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        fd = _take(path)
    except OSError as exc:
        if is_disk_full(exc):
            raise disk_full(workdir, "the workdir lock file", 256) from None
        raise MedprobeError(f"{path}: cannot create or lock the workdir lock file ({exc.strerror or exc}); is "
                            "the folder writable?") from None
    try:
        holder = Holder.me()
        _describe(fd, holder)
        _HELD.add(fd)
        yield holder
    finally:
        _HELD.discard(fd)
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # releases the flock


def _take(path: Path) -> int:
    """An open descriptor of the lock file: locked, or on a filesystem without locks, checked."""
    deadline = time.monotonic() + _DETAILS_WAIT_S
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _read(path)
            if (holder is None or not holder.alive()) and time.monotonic() < deadline:
                time.sleep(0.05)  # the new holder has locked but not yet written its details
                continue
            raise _busy(path.parent, holder) from None
        except OSError as exc:
            if exc.errno not in _NO_LOCKS:
                os.close(fd)
                raise
            return _check_without_locks(path, fd)
        current = _stat(path)
        if current is not None and os.path.samestat(os.fstat(fd), current):
            return fd
        os.close(fd)  # the file was replaced while we locked it: lock the one now in place


def _check_without_locks(path: Path, fd: int) -> int:
    log.warning("%s: the filesystem offers no file locks; relying on the pid in %s to keep one job per workdir",
                path.parent, path.name)
    holder = _read(path)
    if holder is not None and holder.alive():
        os.close(fd)
        raise _busy(path.parent, holder)
    if holder is not None:
        log.info("%s: taking over the lock of pid %d on %s (no longer running)", path.parent, holder.pid, holder.host)
    return fd


def _describe(fd: int, holder: Holder) -> None:
    """Write the holder's details for the message others get (best effort: the lock holds without them)."""
    text = json.dumps(asdict(holder)).encode()
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
        os.fsync(fd)


def _read(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(int(data["pid"]), str(data["host"]), str(data["started"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _stat(path: Path) -> os.stat_result | None:
    try:
        return path.stat()
    except FileNotFoundError:
        return None


def _busy(workdir: Path, holder: Holder | None) -> WorkdirBusyError:
    if holder is None:
        who = "a process that has not written its details"
    elif holder.alive():
        who = f"pid {holder.pid} on {holder.host}, started {holder.started}"
    else:
        who = (f"a process started by pid {holder.pid} on {holder.host} at {holder.started}, which has exited; "
               "a process it started still holds the lock")
    return WorkdirBusyError(f"{workdir} is in use by another medprobe job ({who}); wait for it to finish, or use "
                            "another workdir (output folder)")


def _close_inherited() -> None:
    """In a forked child: drop the lock descriptors it inherited, so the lock dies with the job that took it."""
    for fd in list(_HELD):
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD.clear()


os.register_at_fork(after_in_child=_close_inherited)
