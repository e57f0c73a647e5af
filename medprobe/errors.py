"""Exceptions a user can cause. The CLI prints their message on one line and exits with their code.

Anything else that escapes is a bug: the CLI prints its traceback and exits 1.
"""

from __future__ import annotations

from medprobe.exit_codes import EXIT_USER_ERROR


class MedprobeError(Exception):
    """A problem the user can fix (bad spec, missing file, bad arguments). Exit code 2."""

    exit_code = EXIT_USER_ERROR


class SpecError(MedprobeError):
    """The pipeline spec is invalid; the message names the offending key."""


class ManifestError(MedprobeError):
    """The manifest is missing, unreadable or lacks required columns."""


class WeightsError(MedprobeError):
    """Model weights are missing, unsafe, or do not match the architecture."""


class TrackingError(MedprobeError):
    """The tracking store cannot be used as configured."""


class ReadError(Exception):
    """One input cannot be read or preprocessed. Jobs quarantine the input and go on.

    `category` (a key of `medprobe.privacy.skip_reasons.SKIP_CATEGORIES`) is what may leave the site; `reason` is
    the detailed message, which may quote a library's text, and stays in the workdir's local log."""

    def __init__(self, path: str, reason: str, category: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason
        self.category = category


class ProbeError(MedprobeError):
    """A protocol cannot run on the data it was given (for example, a split that leaks subjects)."""


class Interrupted(BaseException):
    """The process got SIGTERM (a scheduler pre-empting the job): raised in the main thread so that the job unwinds
    like on Ctrl-C, marking its open runs KILLED. A BaseException, so that no `except Exception` swallows it."""

    def __init__(self, signal_number: int) -> None:
        super().__init__(f"signal {signal_number}")
        self.signal_number = signal_number


class DiskFullError(MedprobeError):
    """A write ran out of space (ENOSPC). The message names the folder and how much was needed; nothing half-written
    is left for a later run to trust."""
