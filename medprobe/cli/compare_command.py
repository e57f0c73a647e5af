"""`medprobe compare`: sites side by side for one experiment, and the cross-site transfer matrix."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from medprobe import __version__
from medprobe.cli.exit_codes import EXIT_OK
from medprobe.cli.formatting import format_frame
from medprobe.errors import MedprobeError

if TYPE_CHECKING:  # MLflow and matplotlib load lazily, keeping `medprobe --help` fast
    import pandas as pd

    from medprobe.compare import ComparisonFiles
    from medprobe.tracking import TrackingStore


def register(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser("compare", help="sites side by side and the transfer matrix for one experiment")
    compare.add_argument("--experiment", required=True, help="MLflow experiment name, e.g. medprobe/demo-brain-mri")
    compare.add_argument("--tracking-uri", default=None, help="MLflow URI (default: $MLFLOW_TRACKING_URI)")
    compare.add_argument("--out", default=None,
                         help="folder for comparison.csv, transfer.csv, report.html and the figures (PNG)")
    compare.add_argument("--no-log", action="store_true",
                         help="do not log the comparison as a run of the experiment (it is logged by default "
                              "when --out is given)")

    compare.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from medprobe.compare import protocol_runs, sites_side_by_side, transfer_matrix, transfer_runs, write_report
    from medprobe.tracking import TrackingStore

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        raise MedprobeError("no tracking store: pass --tracking-uri or set MLFLOW_TRACKING_URI")
    store = TrackingStore(uri)
    runs = protocol_runs(store, args.experiment)
    if runs.empty:
        raise MedprobeError(f"experiment '{args.experiment}' has no medprobe protocol runs")
    print(format_frame(sites_side_by_side(runs)))
    matrix = transfer_matrix(runs, transfer_runs(store, args.experiment))
    print_matrices(matrix)
    if args.out:
        files = write_report(runs, args.experiment, Path(args.out), matrix)
        transfer = f", {files.transfer_csv} ({len(matrix)} cells)" if files.transfer_csv else ""
        print(f"wrote {files.csv} ({len(runs)} rows){transfer}, {files.html} and {len(files.figures)} figure(s)")
        if not args.no_log:
            run_id = _log_comparison(store, args.experiment, files, len(runs))
            print(f"logged as comparison run {run_id}")
    return EXIT_OK


def print_matrices(matrix: pd.DataFrame) -> None:
    """Each train site × test site grid under its title."""
    from medprobe.compare import matrix_tables, matrix_title

    for (model, task, metric), grid in matrix_tables(matrix).items():
        print(f"\n== {matrix_title(model, task, metric)} ==")
        print(format_frame(grid))


def _log_comparison(store: TrackingStore, experiment: str, files: ComparisonFiles, n_runs: int) -> str:
    from medprobe.tracking import naming

    run_id = store.start_run(store.experiment_id(experiment), "comparison",
                             {naming.RUN_KIND: "comparison", naming.VERSION: __version__})
    store.log(run_id, metrics={"compare/protocol_runs": n_runs})
    for path in (files.csv, *([files.transfer_csv] if files.transfer_csv else []), files.html, *files.figures):
        store.log_file(run_id, path, "comparison")
    store.finish(run_id)
    return run_id
