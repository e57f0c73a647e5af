"""`medprobe validate MANIFEST`: files, duplicates, labels per site and split, patient leakage."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from medprobe.cli.formatting import aligned, number
from medprobe.errors import MedprobeError
from medprobe.exit_codes import EXIT_OK, EXIT_SKIPPED

if TYPE_CHECKING:
    from medprobe.pipeline_spec.validation import LabelSummary, ValidationReport

#: Problems listed one per line in the text output; --json always holds all of them.
_SHOWN_PROBLEMS = 20


def register(commands: argparse._SubParsersAction) -> None:
    validate = commands.add_parser(
        "validate", help="check a manifest: files, duplicates, labels per site and split, patient leakage",
        description="Subjects found in more than one split are shown with their own IDs and manifest rows, for the "
                    "site's staff to fix the manifest: the report stays where it is printed (keep --json output "
                    "inside the site).",
        epilog="Exit codes: 0 clean (warnings allowed), 3 problems (missing/unreadable files, images a job would "
               "skip, duplicate paths, subjects in more than one split), 2 usage error (manifest missing, "
               "unreadable, lacking columns; bad spec).",
    )
    validate.add_argument("manifest", metavar="MANIFEST", nargs="?", default=None,
                          help="manifest (.csv, .tsv or .parquet); default: the --spec's data.manifest")
    validate.add_argument("--spec", metavar="SPEC", default=None,
                          help="a job spec: --check-read then applies its data.preprocessing (4D series policy), so "
                               "the report predicts what the job skips; its tasks' target columns must exist; "
                               "subject hashes use the job's salt (the spec workdir's subject-salt.txt, created if "
                               "missing, or $MEDPROBE_SUBJECT_SALT), so they are the job's pseudonyms")
    validate.add_argument("--labels", nargs="+", metavar="COL", default=None,
                          help="label columns to summarise (default: every column but path, subject_id, site, "
                               "split, sample_id)")
    validate.add_argument("--check-read", action="store_true",
                          help="read every image (slow) and report those a job would skip (4D series without "
                               "data.preprocessing.volume_index or reduce_4d); default: check only that files exist "
                               "and are not empty")
    validate.add_argument("--json", action="store_true", help="print the report as one JSON object")
    validate.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from medprobe.embed.pseudonyms import command_salt
    from medprobe.pipeline_spec import load_manifest, load_spec
    from medprobe.pipeline_spec.validation import validate_manifest

    spec = load_spec(args.spec) if args.spec else None
    if args.manifest:
        manifest = Path(args.manifest)
    elif spec is not None:
        manifest = spec.data.manifest
    else:
        raise MedprobeError("validate needs a MANIFEST, or --spec SPEC to check the spec's manifest")
    required = args.labels or ([task.target for task in spec.tasks] if spec else [])
    table = load_manifest(manifest, required)
    salt = command_salt(spec.workdir if spec else None)  # the job's salt, so the hashes are its pseudonyms
    report = validate_manifest(table, manifest, labels=args.labels, check_read=args.check_read, salt=salt,
                               data=spec.data if spec else None, spec=args.spec or "")
    if args.json:
        print(json.dumps(report.to_dict(), allow_nan=False))
    else:
        _print_validation(report, salted=bool(salt))
    return EXIT_OK if report.clean else EXIT_SKIPPED


def _print_validation(report: ValidationReport, salted: bool) -> None:
    splits = ", ".join(report.splits)
    print(f"manifest  {report.manifest}: {report.rows} rows, {report.subjects} subjects, "
          f"{len(report.sites)} site(s), split(s): {splits}")
    if not report.read_checked:
        how = "existence and size only (--check-read reads them and finds pixel-identical images)"
    elif report.spec:
        how = f"read with read_image; skips predicted with the preprocessing of {report.spec}"
    else:
        how = "read with read_image; skips predicted with the default preprocessing (--spec SPEC uses a job's)"
    print(f"files     {how}")
    print()
    print(aligned(["site", "split", "rows", "subjects", "file problems"],
                   [[g.site, g.split, str(g.rows), str(g.subjects), str(g.file_issues)] for g in report.groups]))
    for label in report.labels:
        print()
        _print_label(label)
    problems, warnings = report.problems, report.warnings
    for title, lines in (("problems", problems), ("warnings", warnings)):
        if lines:
            print(f"\n{title} ({len(lines)}):")
            for line in lines[:_SHOWN_PROBLEMS]:
                print(f"  - {line}")  # whole: a path in it must stay one piece to copy
            if len(lines) > _SHOWN_PROBLEMS:
                print(f"  ... and {len(lines) - _SHOWN_PROBLEMS} more (--json lists all)")
    if report.leakage and not salted:
        print("subject hashes use a one-off salt; give --spec SPEC (or set $MEDPROBE_SUBJECT_SALT) to see the "
              "job's pseudonyms")
    print()
    if report.clean:
        print(f"clean: no problems, {len(warnings)} warning(s)")
    else:
        print(f"{len(problems)} problem(s), {len(warnings)} warning(s)")


def _print_label(label: LabelSummary) -> None:
    if label.kind == "empty":
        print(f"label '{label.column}': no values")
        return
    if label.kind == "continuous":
        print(f"label '{label.column}': continuous")
        header = ["site", "split", "count", "mean", "min", "max", "missing"]
        rows = [[g.site, g.split, *(number(g.stats[k]) for k in ("count", "mean", "min", "max")), str(g.missing)]
                for g in label.groups]
    else:
        print(f"label '{label.column}': categorical, {len(label.classes)} class(es), rows per class")
        header = ["site", "split", *label.classes, "missing"]
        rows = [[g.site, g.split, *(str(g.counts.get(c, 0)) for c in label.classes), str(g.missing)]
                for g in label.groups]
    print(aligned(header, rows))
