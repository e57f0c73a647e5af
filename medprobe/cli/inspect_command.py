"""`medprobe inspect [--json] PATH...`: facts about image files and DICOM folders."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from typing import Any

from medprobe.cli.formatting import aligned, grouped_notes, number
from medprobe.errors import MedprobeError
from medprobe.exit_codes import EXIT_OK, EXIT_SKIPPED


def register(commands: argparse._SubParsersAction) -> None:
    inspect = commands.add_parser(
        "inspect", help="facts about image files and DICOM folders: geometry, stored type, value range",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="One row per image: a file gives one row; a folder gives one row per DICOM series in it\n"
                    "(a folder may hold several), at the series' own location (the folder its files share) with\n"
                    "its number of files; a series that cannot be read is listed with its reason.\n"
                    "A folder without DICOM gives one row per image file of a known\n"
                    "format inside it (recursively); image files next to DICOM series are not listed.\n"
                    "min/max/mean are physical values (after rescale slope/intercept, before normalisation),\n"
                    "ignoring NaN. Nothing from the files' headers is printed beyond these facts.",
        epilog="Exit codes: 0 every input read, 3 some inputs unreadable (listed with a reason), 2 usage error.",
    )
    inspect.add_argument("paths", nargs="*", metavar="PATH", help="image files or DICOM folders")
    inspect.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")

    inspect.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from medprobe.io.inspection import inspect_path

    if not args.paths:
        raise MedprobeError("inspect needs at least one PATH (an image file or a DICOM folder)")
    rows = [row for path in args.paths for row in inspect_path(path)]
    failed = sum(not row["ok"] for row in rows)
    if args.json:
        for row in rows:
            print(json.dumps(row, allow_nan=False))
    else:
        _print_table(rows)
        print(f"{len(rows)} image(s): {len(rows) - failed} read, {failed} unreadable")
    return EXIT_SKIPPED if failed else EXIT_OK


def _print_table(rows: list[dict[str, Any]]) -> None:
    """One line per image, its path relative to the folder all of them share (named first when it is not the
    working directory), then each image's reason or warnings below the table, wrapped."""
    locations = [os.path.abspath(row["location"] or row["path"]) for row in rows]
    base = os.path.commonpath([os.path.dirname(location) for location in locations])
    if base != os.getcwd():
        print(f"in {base}:")
    shown = [os.path.relpath(location, base) for location in locations]
    print(aligned(["path", "series", "ok", "files", "modality", "shape", "spacing", "orient", "dtype", "min", "max",
                   "mean"], [[path, *_inspect_cells(row)] for path, row in zip(shown, rows, strict=True)]))
    notes = grouped_notes((path, row["reason"] if not row["ok"] else "; ".join(row["warnings"]))
                          for path, row in zip(shown, rows, strict=True) if not row["ok"] or row["warnings"])
    if notes:
        print("notes:")
        print("\n".join(notes))


def _inspect_cells(row: dict[str, Any]) -> list[str]:
    def joined(values: Sequence[Any] | None) -> str:
        return "x".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) if values else "-"

    return [row["series"] or "-", "yes" if row["ok"] else "NO",
            str(row["files"]) if row["files"] is not None else "-", row["modality"] or "-",
            joined(row["shape"]), joined(row["spacing"]), row["orientation"] or "-", row["dtype"] or "-",
            number(row["min"]), number(row["max"]), number(row["mean"])]
