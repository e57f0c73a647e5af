"""`medprobe demo`: synthetic two-site data, both sites' jobs, the comparison and the transfer matrix."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from medprobe.cli.compare_command import print_matrices, print_paired, print_pooled, print_robustness_ranking
from medprobe.cli.formatting import WIDTH, format_frame, title
from medprobe.errors import MedprobeError
from medprobe.exit_codes import EXIT_SKIPPED


def register(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser("demo", help="synthetic two-site demo: data, both jobs, comparison")
    demo.add_argument("--out", default="medprobe-demo", help="output folder (default: ./medprobe-demo)")
    demo.add_argument("--subjects", type=int, default=48, help="subjects per site (default 48)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.add_argument("--robustness", action="store_true",
                      help="also run the robustness protocol: every modality's artefact suite at five severities "
                           "on the test split (a few minutes more)")

    demo.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    import pandas as pd

    from medprobe.demo.runner import run_demo

    if args.subjects < 8:
        raise MedprobeError(f"--subjects must be at least 8 (got {args.subjects})")
    result = run_demo(Path(args.out), n_subjects=args.subjects, progress=not args.no_progress,
                      robustness=args.robustness)
    for experiment, table in result.tables.items():
        print(title(f"{experiment}: sites side by side (test metrics [95 % CI]; random-init ViT = smoke test only)"))
        print(format_frame(table))
        print_pooled(result.pooled.get(experiment))
        print_paired(result.paired.get(experiment))
        print_robustness_ranking(result.robustness.get(experiment, pd.DataFrame()))
    db = result.tracking_uri.removeprefix("sqlite:///")
    print(f"\nMLflow store: {result.tracking_uri}")
    print(f"open the UI:  mlflow ui --backend-store-uri sqlite:///{db} --port 5000")
    for experiment, view in result.views.items():
        print(f"  {experiment} by site: http://127.0.0.1:5000/{view}")
    print(f"compare:      medprobe compare --experiment {result.experiments[0]} --tracking-uri {result.tracking_uri}")
    stages = {"generate", "load", "embed", "probe", "robustness", "paired", "diagnostics", "log", "transfer",
              "compare"}
    total = sum(v for k, v in result.seconds.items() if k in stages)
    shares = ", ".join(f"{k} {v:.1f}s" for k, v in result.seconds.items())
    print("\n".join(textwrap.wrap(f"time:         {total:.1f}s ({shares})", WIDTH, subsequent_indent=" " * 14)))
    skipped = sum(r.skipped_inputs for r in result.reports)
    if result.exit_code == EXIT_SKIPPED:
        print(f"completed with {skipped} skipped input(s); see each job's quarantine.csv")
    for experiment, matrix in result.matrices.items():
        print(title(f"{experiment}: cross-site transfer (each site's linear probe head on the other site's test "
                    "split)", "===="))
        print_matrices(matrix)
    return result.exit_code
