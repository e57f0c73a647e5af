"""Salted pseudonyms for subject and sample identifiers, so tables and runs never carry the site's own IDs.

One salt per site, found the same way by every command (`command_salt` is the rule, every command calls it):

- $MEDPROBE_SUBJECT_SALT when it is set (at least 16 characters), for every command;
- else the salt kept in the site's workdir, `WORKDIR/subject-salt.txt` (created on first use, owner-only), where
  the workdir is the spec's `workdir` for `medprobe run SPEC`, `medprobe embed --spec SPEC` and
  `medprobe validate --spec SPEC`, and OUT for `medprobe embed --out OUT` without a spec;
- `medprobe validate MANIFEST` without a spec has no workdir: it uses a one-off salt, so its hashes match
  nothing else (give it `--spec` to see the job's pseudonyms);
- `medprobe evaluate` and the Python API never re-salt: they read the pseudonyms already in the table, and an id
  that is not a medprobe pseudonym is hashed with a one-off salt before any file is written.

So `run SPEC`, `embed --spec SPEC` and `validate --spec SPEC` give the same subject and sample pseudonyms with or
without the environment salt; keep (and back up) the workdir's salt file to keep them across re-runs.

The salt file in a workdir is created so that it is never seen empty or half-written, and so that two jobs
starting at once on a fresh workdir end up with one salt: each writes a complete salt to its own temporary file,
fsyncs it, and hard-links it to the final name, which fails for all but the first; everyone then reads the final
file. (On a filesystem without hard links the final file is created exclusively and readers wait briefly for a
salt still being written.)
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import os
import secrets
import time
from pathlib import Path

from medprobe.embed.files import disk_full, is_disk_full, sync_folder, temporary_for
from medprobe.errors import MedprobeError

SALT_ENV = "MEDPROBE_SUBJECT_SALT"
SALT_FILE = "subject-salt.txt"
#: Characters a salt file must hold at least (the salts medprobe writes have 64 hex characters).
MIN_FILE_SALT = 32
#: Characters $MEDPROBE_SUBJECT_SALT must hold at least.
MIN_ENV_SALT = 16
#: How long a reader waits for a salt another process is still writing (only without hard links).
_WRITING_GRACE_S = 5.0
_NO_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EXDEV, errno.EMLINK)


def environment_salt() -> bytes | None:
    """$MEDPROBE_SUBJECT_SALT, checked (at least 16 characters); None when it is not set."""
    if SALT_ENV not in os.environ:
        return None
    value = os.environ[SALT_ENV]
    if len(value) < MIN_ENV_SALT:
        raise MedprobeError(f"${SALT_ENV} holds {len(value)} character(s); a subject salt needs at least "
                            f"{MIN_ENV_SALT} (e.g. the output of `openssl rand -hex 32`), or unset it to use "
                            "the salt kept in the workdir")
    return value.encode()


def command_salt(spec_workdir: Path | None = None, out: Path | None = None) -> bytes | None:
    """The site's salt as every command finds it (the rule in this module's docstring): the environment's, else
    the one kept in the spec's workdir, else in `out` (a command's output folder that stands for the workdir);
    None when a command has neither (the caller then uses a one-off salt and says so)."""
    salt = environment_salt()
    if salt is not None:
        return salt
    workdir = spec_workdir if spec_workdir is not None else out
    return None if workdir is None else site_salt(workdir)


def site_salt(workdir: Path) -> bytes:
    """The salt from $MEDPROBE_SUBJECT_SALT, else a random one kept (owner-only) in the job's workdir.

    Keeping it in the workdir makes pseudonyms stable across re-runs of the job, so the cache and splits stay
    valid; it never leaves the site. A salt that is set but too short (the variable under 16 characters, the file
    under 32) is an error, never silently replaced: every pseudonym depends on it.
    """
    salt = environment_salt()
    if salt is not None:
        return salt
    path = workdir / SALT_FILE
    if not path.exists():
        try:
            _create(path)
        except OSError as exc:
            if is_disk_full(exc):
                raise disk_full(workdir, "the subject salt", 64) from None
            raise
    return _read(path)


def _create(path: Path) -> None:
    """Create the salt file whole, or leave the one another process created first."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_for(path)
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return  # another job got there first: its salt is the workdir's salt
        except OSError as exc:
            if exc.errno not in _NO_LINKS:
                raise
            _create_without_links(path)
        sync_folder(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


def _create_without_links(path: Path) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32))
        handle.flush()
        os.fsync(handle.fileno())


def _read(path: Path) -> bytes:
    deadline = time.monotonic() + _WRITING_GRACE_S
    while True:
        salt = path.read_text(encoding="utf-8", errors="replace").strip()
        if len(salt) >= MIN_FILE_SALT:
            return salt.encode()
        if time.monotonic() > deadline or time.time() - path.stat().st_mtime > _WRITING_GRACE_S:
            raise MedprobeError(
                f"{path}: the subject salt is {'empty' if not salt else f'only {len(salt)} characters'} (at least "
                f"{MIN_FILE_SALT} needed). Every pseudonym depends on it: restore it from a backup, or delete it only "
                "if no results were produced with it (a new salt gives every subject a new pseudonym)")
        time.sleep(0.05)


def pseudonym(salt: bytes, kind: str, value: str) -> str:
    """A short keyed hash, prefixed by kind ('sub', 'smp'); the same input always gives the same pseudonym."""
    digest = hmac.new(salt, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}-{digest[:16]}"
