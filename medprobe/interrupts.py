"""Stopping on a signal (SIGTERM from a scheduler, Ctrl-C) without tearing a write in half.

The command installs `request_stop` as the SIGTERM handler. Outside a critical section it raises `Interrupted`
at once, so a long embedding loop stops promptly; inside one (a call to the tracking store or the bundle, see
`critical`) the stop waits until the call has returned, so that no SQL statement or file write is cut short and
the job then unwinds cleanly, marking its open runs KILLED.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from medprobe.errors import Interrupted

_state = {"depth": 0, "pending": 0}


def request_stop(signal_number: int, _frame: object = None) -> None:
    if _state["depth"]:
        _state["pending"] = signal_number
        return
    raise Interrupted(signal_number)


@contextmanager
def critical() -> Iterator[None]:
    """A section a signal must not interrupt; a stop requested meanwhile is raised when the outermost one ends."""
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        pending = _state["pending"]
        if pending and not _state["depth"]:
            _state["pending"] = 0
            raise Interrupted(pending)
