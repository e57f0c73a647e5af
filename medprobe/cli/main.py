"""The `medprobe` command: parse, call the library, map errors to exit codes.

Exit codes (all commands): 0 success · 2 user error (bad spec, missing file, bad arguments) · 3 completed, but
some inputs were skipped (quarantine report written) · 1 a bug (the only case that prints a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from medprobe.exit_codes import EXIT_BUG, EXIT_INTERRUPTED, EXIT_USER_ERROR

# The command is the application, so it may set process-wide defaults the library never sets on import: no
# telemetry from MLflow (hospital jobs have no business calling out), and no INFO lines from MLflow's own logger
# (it configures itself when imported, after `_configure_logging` ran).
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")


#: One module per command, each with `register(subparsers)`; a new command is a new module and one line here.
COMMANDS = (
    "run", "transfer", "embed", "evaluate", "demo", "compare", "sync", "models", "inspect", "validate", "pretrain",
    "federate",
)


def build_parser() -> argparse.ArgumentParser:
    from medprobe import __version__

    parser = argparse.ArgumentParser(
        prog="medprobe",
        description="Evaluate frozen medical-imaging foundation models per site and compare the sites.",
        epilog="Exit codes: 0 ok, 2 user error, 3 completed with skipped inputs, 4 results only in the offline "
               "bundle, 130/143 stopped by Ctrl-C/SIGTERM, 1 bug (docs/exit-codes.md).",
    )
    parser.add_argument("--version", action="version", version=f"medprobe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"medprobe.cli.{name}_command").register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    from medprobe.cli.unwritable import temporary_folder_problem
    from medprobe.errors import Interrupted, MedprobeError

    if (problem := temporary_folder_problem()) is not None:
        print(f"medprobe: error: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        with _terminate_as_interrupt():
            return int(args.handler(args))
    except MedprobeError as exc:
        print(f"medprobe: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, Interrupted) as exc:
        number = exc.signal_number if isinstance(exc, Interrupted) else signal.SIGINT
        print(f"medprobe: stopped by {signal.Signals(number).name}; open runs were marked KILLED, finished cache "
              "shards are kept: re-run the same command to resume", file=sys.stderr)
        # Loader workers torn down mid-transfer make the tensor-sharing thread of multiprocessing report a broken
        # connection while the process exits; the stop has been reported, so that noise is not printed.
        sys.excepthook = _silent
        return EXIT_INTERRUPTED.get(int(number), 128 + int(number))
    except Exception as exc:  # noqa: BLE001 - a problem of the site's setup is the user's to fix; else a bug
        message = _setup_problem(exc)
        if message is None:
            return _bug()
        print(f"medprobe: error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR


def _setup_problem(exc: Exception) -> str | None:
    """One line for a failure the site fixes in its setup (a folder it cannot write, a tracking server that refused
    the credentials), else None."""
    if isinstance(exc, OSError):
        from medprobe.cli.unwritable import unwritable_message

        return unwritable_message(exc)
    from medprobe.tracking.failures import server_refusal

    return server_refusal(exc)


def _bug() -> int:
    traceback.print_exc()
    print("medprobe: internal error (a bug); please report it with the traceback above", file=sys.stderr)
    return EXIT_BUG


def _silent(*_: object) -> None:
    return None


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """While a command runs, SIGTERM (a scheduler's stop) unwinds it like Ctrl-C, once any write to the tracking
    store or the bundle in progress has completed (`medprobe.interrupts`); the main thread only."""
    from medprobe.interrupts import request_stop

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, request_stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "mlflow", "urllib3", "matplotlib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # MLflow logs every database error with its traceback before raising it; medprobe reports each one itself, in
    # one line that says what it means (a full disk, a busy file, a lost connection: medprobe.tracking.failures).
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.DEBUG if verbose else logging.CRITICAL)


if __name__ == "__main__":
    raise SystemExit(main())
