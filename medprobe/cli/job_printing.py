"""What `medprobe run` and `medprobe transfer` print about a job: outcome tables and where the runs went."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from medprobe.cli.formatting import format_frame

if TYPE_CHECKING:  # the job machinery imports torch; keep `medprobe --help` fast
    from medprobe.jobs import JobReport, ProtocolOutcome, TransferOutcome


def print_outcomes(outcomes: list[ProtocolOutcome]) -> None:
    if not outcomes:
        return
    rows = [{"model": o.model, "task": o.task, "protocol": o.protocol,
             **{k: v for k, v in o.metrics.items() if "/" not in k}} for o in outcomes]
    print(format_frame(pd.DataFrame(rows).set_index(["task", "model", "protocol"])))


def print_transfers(outcomes: list[TransferOutcome]) -> None:
    """Train site → this site, one row per model and task, with the point metrics."""
    if not outcomes:
        return
    rows = [{"task": o.task, "model": o.model, "train_site": o.train_site,
             **{k: v for k, v in o.metrics.items() if "/" not in k and not k.endswith(("_ci_low", "_ci_high"))}}
            for o in outcomes]
    print("transfer: other sites' heads scored on this site's rows")
    print(format_frame(pd.DataFrame(rows).set_index(["task", "model", "train_site"])))


def print_tracking(report: JobReport) -> None:
    if report.offline_reason:
        print(f"tracking: offline ({report.offline_reason}); review the bundle, then: medprobe sync BUNDLE --to URI")
    else:
        print(f"tracking: {report.tracking_uri} · experiment '{report.experiment}'")
    print(f"bundle: {report.bundle_path}")
