"""`medprobe run SPEC [--dry-run]`: a site job from a pipeline spec."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from medprobe.cli.job_printing import print_outcomes, print_robustness, print_tracking, print_transfers
from medprobe.errors import MedprobeError
from medprobe.exit_codes import EXIT_BUNDLE_ONLY, EXIT_OK, EXIT_SKIPPED

if TYPE_CHECKING:  # the job machinery imports torch; keep `medprobe --help` fast
    from medprobe.jobs import JobReport


def register(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run", help="run a site job from a pipeline spec (YAML)",
        description="Embeds the manifest with every model, evaluates every task and logs the runs. Subject and "
                    "sample pseudonyms are salted with $MEDPROBE_SUBJECT_SALT, else the salt kept in the spec "
                    "workdir's subject-salt.txt, the same salt `medprobe embed --spec` and `medprobe validate --spec` "
                    "use, so their pseudonyms match the job's.")
    run.add_argument("spec", help="pipeline spec file")
    run.add_argument("--dry-run", action="store_true",
                     help="validate spec and manifest, print the plan (with the runs the job will create, by kind), "
                          "stop")
    run.add_argument("--check-read", action="store_true",
                     help="with --dry-run: read every image once through the job's reader and 4D policy (slow; "
                          "nothing is embedded) and name those the job would skip")
    run.add_argument("--no-progress", action="store_true", help="no progress bars (batch logs)")
    run.add_argument("--offline", action="store_true",
                     help="log nothing to a server: write the results bundle only (deliver it with medprobe sync)")

    run.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from medprobe.pipeline_spec import load_spec

    if args.check_read and not args.dry_run:
        raise MedprobeError("--check-read goes with --dry-run (a job reads every image anyway)")
    spec = load_spec(args.spec)  # before torch is imported: a typo in the spec answers at once
    if args.dry_run:
        from medprobe.jobs.plan import describe_plan

        for line in describe_plan(spec, check_read=args.check_read):
            print(line)
        print("dry run: spec and manifest are valid; nothing was run")
        return EXIT_OK
    from medprobe.jobs.site_job import run_job

    print(f"medprobe run: pipeline '{spec.name}', site '{spec.site}'")
    report = run_job(spec, progress=not args.no_progress, offline=args.offline)
    print_outcomes(report.outcomes)
    print_robustness(report.robustness)
    print_transfers(report.transfers)
    return _finish(report)


def _finish(report: JobReport) -> int:
    print_tracking(report)
    skipped = (f"{report.skipped_inputs} skipped input(s), {len(report.failed_protocols)} skipped protocol run(s) "
               f"and {len(report.failed_runs)} failed run(s); quarantine report: {report.quarantine_path or '-'}")
    if report.exit_code == EXIT_BUNDLE_ONLY:
        print(f"completed, but the results are ONLY in the bundle {report.bundle_path}: the tracking store "
              f"{report.tracking_uri} could not be reached ({report.offline_reason}); deliver them with `medprobe "
              f"sync {report.bundle_path} --to URI` (exit {EXIT_BUNDLE_ONLY}); {skipped}")
    elif report.exit_code == EXIT_SKIPPED:
        print(f"completed with {skipped}")
    else:
        print("completed")
    return report.exit_code
