"""`medprobe sync BUNDLE --to URI`: deliver an offline results bundle to a tracking server."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from medprobe.errors import MedprobeError
from medprobe.exit_codes import EXIT_OK

#: How long a sync waits for another sync of the same bundle to finish.
LOCK_WAIT_S = 600.0
_POLL_S = 0.2


def register(commands: argparse._SubParsersAction) -> None:
    sync = commands.add_parser(
        "sync", help="recreate an offline bundle's runs on a tracking server (idempotent)",
        epilog="Every file of the bundle is first checked against the sha256 digests the job wrote last "
               "(digests.json): a changed, truncated, missing or added file stops the sync before anything is "
               "sent (exit 2, naming the file). A bundle without digests.json (its job was killed outright, or an "
               "older medprobe wrote it) is refused unless --accept-unverified; re-running the same job seals the "
               "bundles its killed attempts left. A run already on the server (matched by its medprobe.run_uid "
               "tag) is skipped; one the job started there before the connection dropped is completed. Syncing "
               "twice creates nothing new; a second sync of the same bundle started meanwhile on this machine "
               "waits for the first.",
    )
    sync.add_argument("bundle", metavar="BUNDLE", help="the folder a job printed as 'bundle: PATH'")
    sync.add_argument("--to", "--tracking-uri", dest="uri", default=None,
                      help="MLflow URI (default: $MLFLOW_TRACKING_URI)")
    sync.add_argument("--accept-unverified", action="store_true",
                      help="sync a bundle that has no digests.json, unchecked (a damaged bundle is still refused)")
    sync.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from medprobe.tracking.failures import disk_full, is_connection_failure
    from medprobe.tracking.redaction import redacted_uri
    from medprobe.tracking.sync import sync_bundle
    from medprobe.tracking.uri import chosen_uri

    uri = chosen_uri(args.uri)
    if not uri:
        raise MedprobeError("sync needs a destination: --to URI or $MLFLOW_TRACKING_URI")
    bundle = Path(args.bundle)
    if not bundle.is_dir():
        raise MedprobeError(f"{bundle}: no such folder (give the folder a job printed as 'bundle: PATH')")
    try:
        with holding(bundle):
            report = sync_bundle(bundle, uri, accept_unverified=args.accept_unverified)
    except Exception as exc:
        full = disk_full(exc, f"tracking store {redacted_uri(uri)}")
        if full is not None:
            raise full from None
        if not is_connection_failure(exc):
            raise
        raise MedprobeError(
            f"cannot reach {redacted_uri(uri)} ({type(exc).__name__}); the bundle is unchanged, run sync again "
            "when the server is back (runs already delivered are not repeated)"
        ) from None
    if not report.verified:
        print(f"medprobe: warning: {bundle} has no digests.json: synced unchecked (--accept-unverified)",
              file=sys.stderr)
    print(f"synced {args.bundle} to {redacted_uri(uri)}: {report.created} run(s) created, "
          f"{report.completed} completed, {report.skipped} already there")
    return EXIT_OK


@contextlib.contextmanager
def holding(bundle: Path) -> Iterator[None]:
    """Hold the bundle's lock (`medprobe.jobs.workdir_lock`, on `BUNDLE/.medprobe.lock`) for the whole sync, waiting
    up to LOCK_WAIT_S for another holder: two syncs of one bundle on this machine (or on one filesystem with working
    locks) then run one after the other, and the second finds every run there. A read-only bundle cannot hold the
    lock file; it is synced without it, with a warning."""
    from medprobe.jobs.workdir_lock import WorkdirBusyError, hold_workdir

    if not os.access(bundle, os.W_OK):
        print(f"medprobe: warning: {bundle} is read-only, so this sync cannot lock it; do not sync it twice at "
              "once", file=sys.stderr)
        yield
        return
    deadline, waiting = time.monotonic() + LOCK_WAIT_S, False
    with contextlib.ExitStack() as stack:
        while True:
            try:
                stack.enter_context(hold_workdir(bundle))
                break
            except WorkdirBusyError:
                if time.monotonic() > deadline:
                    raise MedprobeError(f"{bundle}: another medprobe process still holds the bundle after "
                                        f"{LOCK_WAIT_S:.0f} s; run sync again once it has finished") from None
                if not waiting:
                    print(f"medprobe: {bundle} is being synced by another process; waiting for it",
                          file=sys.stderr)
                    waiting = True
                time.sleep(_POLL_S)
        yield
