"""Opening only regular files: a named pipe, device or socket in a manifest must never block or feed a job."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO


class NotARegularFile(OSError):
    """The path is a pipe, device or socket; it was not read."""


def open_regular(path: str | Path) -> BinaryIO:
    """`path` opened for reading in binary mode, or NotARegularFile. The open itself cannot block: a FIFO without a
    writer would otherwise hang the job (and its workdir lock) for ever, so the file is opened non-blocking and
    checked through its descriptor before anything is read."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(f"{path}: not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def is_special(path: str | Path) -> bool:
    """Whether `path` exists and is neither a regular file nor a folder (following links), without opening it."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
