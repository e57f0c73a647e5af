"""What `medprobe run` and `medprobe transfer` print about a job: outcome tables, their notes and where the runs
went. Tables keep to 120 columns: a few headline metrics per task, each with its 95 % interval in the same cell."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from medprobe.cli.formatting import aligned, grouped_notes
from medprobe.metrics.catalogue import SHOWN
from medprobe.metrics.display import count, flag_mark, metric_with_interval, with_interval

if TYPE_CHECKING:  # the job machinery imports torch; keep `medprobe --help` fast
    from medprobe.jobs import JobReport, ProtocolOutcome, TransferOutcome
    from medprobe.jobs.robustness_scoring import RobustnessResult



def headline_metrics(outcomes: Sequence[Mapping[str, float]]) -> list[str]:
    """The headline metrics any of these results has, classification first."""
    present = {name for metrics in outcomes for name in metrics}
    return [name for name in SHOWN if name in present]


def print_outcomes(outcomes: list[ProtocolOutcome]) -> None:
    """One table per task (model × protocol rows, the test subjects each was scored on), then the notes."""
    if not outcomes:
        return
    for task in dict.fromkeys(o.task for o in outcomes):
        rows = [o for o in outcomes if o.task == task and o.protocol != "robustness"]  # its own table
        names = headline_metrics([o.metrics for o in rows]) or ["result"]  # every protocol skipped: one column
        print(f"\n{task} (test metrics, 95 % subject-bootstrap intervals; n: test subjects)")
        flagged = any(o.flags for o in rows)  # a flags column only where some row has flags
        table = [[o.model, o.protocol, count(o.n_test_subjects), *(metric_with_interval(o.metrics, n) for n in names)]
                 if o.metrics else [o.model, o.protocol, "", "skipped", *([""] * (len(names) - 1))] for o in rows]
        table = [[*cells, flag_mark(o.flags)] if flagged else cells for cells, o in zip(table, rows, strict=True)]
        print(aligned(["model", "protocol", "n", *names, *(["flags"] if flagged else [])], table,
                      right_numbers=False, keys=3))
    print_notes({f"{o.model}/{o.task}/{o.protocol}": o.notes for o in outcomes})


def print_robustness(results: Sequence[tuple[str, str, RobustnessResult]]) -> None:
    """Per model and task: the headline metric clean and under each artefact at the summary severity, with the
    median embedding cosine to the clean one, and the ranking number."""
    for model, task, result in results:
        table = result.table[result.table["metric"] == result.headline]
        clean = table[table["severity"] == 0]["value"]
        shown = table[table["severity"] == result.summary_severity]
        if shown.empty:
            continue
        print(f"\nrobustness · {model} · {task}: {result.headline} under each artefact at severity "
              f"{result.summary_severity} (clean {clean.iloc[0]:.3f}; mean relative drop {result.summary:+.1%})")
        rows = [[str(r["artefact"]), with_interval(r["value"], r["ci_low"], r["ci_high"]),
                 f"{r['drop']:+.1%}", f"{r['cosine_median']:.4f}", f"{r['cosine_p05']:.4f}"]
                for r in shown.to_dict("records")]
        print(aligned(["artefact", result.headline, "drop", "cosine median", "cosine p05"], rows, right_numbers=False))


def print_transfers(outcomes: list[TransferOutcome]) -> None:
    """Train site → this site, one row per model and task, with the headline metrics and their intervals."""
    if not outcomes:
        return
    for task in dict.fromkeys(o.task for o in outcomes):
        rows = [o for o in outcomes if o.task == task]
        names = headline_metrics([o.metrics for o in rows])
        print(f"\ntransfer · {task}: other sites' heads scored on this site's rows (95 % intervals; n: test subjects)")
        flagged = any(o.flags for o in rows)  # a flags column only where some row has flags
        table = [[o.model, o.train_site, count(o.n_test_subjects), *(metric_with_interval(o.metrics, n) for n in names)]
                 for o in rows]
        table = [[*cells, flag_mark(o.flags)] if flagged else cells for cells, o in zip(table, rows, strict=True)]
        print(aligned(["model", "train site", "n", *names, *(["flags"] if flagged else [])], table,
                      right_numbers=False, keys=3))
    print_notes({f"{o.train_site} → {o.model}/{o.task}": o.notes for o in outcomes})


def print_notes(notes: Mapping[str, Sequence[str]]) -> None:
    """The runs' notes (what was left out, folds reduced, classes missing, ...), each distinct note once with the
    runs that gave it."""
    lines = grouped_notes((where, note) for where, items in notes.items() for note in items)
    if lines:
        print("notes:")
        print("\n".join(lines))


def print_tracking(report: JobReport) -> None:
    if report.offline_reason:
        print(f"tracking: offline ({report.offline_reason}); review the bundle, then: medprobe sync BUNDLE --to URI")
    else:
        print(f"tracking: {report.tracking_uri} · experiment '{report.experiment}'")
    print(f"bundle: {report.bundle_path}")
