"""A folder the job cannot write, said in one line with what to do: the usual first error of a container whose
bind-mounted /work belongs to another user, or of a read-only root file system.

The message goes to the site's own terminal (it names the local path); nothing of it is logged to a tracking store.
"""

from __future__ import annotations

import errno
import os

_NOT_WRITABLE = {errno.EACCES, errno.EPERM, errno.EROFS}


def unwritable_message(exc: OSError) -> str | None:
    """The one-line explanation of an OSError that says a path cannot be written, else None (not this problem)."""
    if exc.errno not in _NOT_WRITABLE or not exc.filename:
        return None
    path = os.fsdecode(exc.filename)
    if exc.errno == errno.EROFS:
        return (f"cannot write {path}: the file system is read-only. Mount a writable volume there (for a "
                "container: -v <volume>:/work, and --tmpfs /tmp when the root file system is read-only)")
    user = f"{os.getuid()}:{os.getgid()}" if hasattr(os, "getuid") else "this user"
    return (f"cannot write {path}: permission denied for user {user} (or, if it is an input, cannot read it). Give "
            f"that user access: `chown -R {user} <host folder>`, podman's `:U` volume option "
            "(-v <host folder>:/work:U), or run the container as the folder's owner with --user <uid>:<gid>")


def temporary_folder_problem() -> str | None:
    """None when Python finds a writable temporary folder (MLflow, matplotlib and the jobs need one), else the
    one-line explanation: the case of a container started with a read-only root file system and no tmpfs."""
    import tempfile

    try:
        tempfile.gettempdir()
    except OSError:
        return ("no writable temporary folder (TMPDIR, /tmp, /var/tmp, /usr/tmp and the working folder were tried): "
                "with a read-only root file system, mount a tmpfs at /tmp (--tmpfs /tmp) or set TMPDIR to a writable "
                "folder")
    return None
