"""`medprobe transfer SPEC`: score the probe heads other sites published on this site's cached embeddings."""

from __future__ import annotations

import argparse

from medprobe.cli.job_printing import print_tracking, print_transfers


def register(commands: argparse._SubParsersAction) -> None:
    transfer = commands.add_parser(
        "transfer", help="score other sites' published probe heads on this site's cached embeddings",
        epilog="Needs the embedding tables of an earlier `medprobe run SPEC` (workdir/embeddings/) and a reachable "
               "tracking store. Logs one transfer run per (train site -> this site) for every model and task.",
    )
    transfer.add_argument("spec", help="the site's pipeline spec (the one `medprobe run` used)")
    transfer.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from medprobe.jobs import run_transfer
    from medprobe.pipeline_spec import load_spec

    spec = load_spec(args.spec)
    print(f"medprobe transfer: pipeline '{spec.name}', site '{spec.site}'")
    report = run_transfer(spec)
    if report.transfers:
        print_transfers(report.transfers)
    else:
        print("no other site has published a head this site can score yet")
    print_tracking(report)
    return report.exit_code
