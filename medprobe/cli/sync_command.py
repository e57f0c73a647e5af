"""`medprobe sync BUNDLE --to URI`: deliver an offline results bundle to a tracking server."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from medprobe.cli.exit_codes import EXIT_OK
from medprobe.errors import MedprobeError


def register(commands: argparse._SubParsersAction) -> None:
    sync = commands.add_parser(
        "sync", help="recreate an offline bundle's runs on a tracking server (idempotent)",
        epilog="A run already on the server (matched by its medprobe.run_uid tag) is skipped; one the job "
               "started there before the connection dropped is completed. Syncing twice creates nothing new.",
    )
    sync.add_argument("bundle", metavar="BUNDLE", help="the folder a job printed as 'bundle: PATH'")
    sync.add_argument("--to", dest="uri", default=None, help="MLflow URI (default: $MLFLOW_TRACKING_URI)")
    sync.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from medprobe.tracking.failures import disk_full, is_connection_failure
    from medprobe.tracking.redaction import redacted_uri
    from medprobe.tracking.sync import sync_bundle

    uri = args.uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise MedprobeError("sync needs a destination: --to URI or $MLFLOW_TRACKING_URI")
    try:
        report = sync_bundle(Path(args.bundle), uri)
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
    print(f"synced {args.bundle} to {redacted_uri(uri)}: {report.created} run(s) created, "
          f"{report.completed} completed, {report.skipped} already there")
    return EXIT_OK
