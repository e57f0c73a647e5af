"""`medprobe compare`: sites side by side for one experiment, and the cross-site transfer matrix."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from medprobe.cli.formatting import format_frame, grouped_notes, title
from medprobe.errors import MedprobeError
from medprobe.exit_codes import EXIT_OK
from medprobe.tracking.run_kinds import COMPARISON

if TYPE_CHECKING:  # MLflow and matplotlib load lazily, keeping `medprobe --help` fast
    import pandas as pd

    from medprobe.compare import ComparisonFiles


def register(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser("compare", help="sites side by side and the transfer matrix for one experiment")
    compare.add_argument("--experiment", required=True, help="MLflow experiment name, e.g. medprobe/demo-brain-mri")
    compare.add_argument("--tracking-uri", default=None, help="MLflow URI (default: $MLFLOW_TRACKING_URI)")
    compare.add_argument("--out", default=None,
                         help="folder for comparison.csv, pooled.csv, paired.csv, subgroups.csv, subgroup_gaps.csv, "
                              "label_efficiency.csv, transfer.csv, report.html and the figures (PNG)")
    compare.add_argument("--no-log", action="store_true",
                         help="do not log the comparison as a run of the experiment (it is logged by default "
                              "when --out is given)")

    compare.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from medprobe.compare import compare_experiment, save_ui_view, write_report
    from medprobe.tracking.reading import StoreNotFound, open_for_reading
    from medprobe.tracking.uri import chosen_uri

    uri = chosen_uri(args.tracking_uri)
    if not uri:
        raise MedprobeError("no tracking store: pass --tracking-uri or set MLFLOW_TRACKING_URI")
    try:  # compare reads: a mistyped path must not leave an empty database behind
        store = open_for_reading(uri)
    except StoreNotFound as exc:
        raise StoreNotFound(f"experiment '{args.experiment}' not found: {exc}") from None
    comparison = compare_experiment(store, args.experiment)
    if comparison.runs.empty:
        raise MedprobeError(f"experiment '{args.experiment}' has no medprobe protocol runs")
    for note in comparison.notes:
        print(f"note: {note}")
    print(title(f"{args.experiment}: sites side by side (held-out test metrics [95 % CI]; n: test subjects)").lstrip())
    print(format_frame(comparison.side_by_side))
    print_pooled(comparison.pooled)
    print_paired(comparison.paired)
    print_robustness_ranking(comparison.robustness)
    print_matrices(comparison.matrix)
    view = save_ui_view(store, comparison)
    if view:
        print(f"\nMLflow UI: the protocol runs by site with their headline metrics at <server>/{view}")
    if args.out:
        files = write_report(comparison.runs, args.experiment, Path(args.out), comparison.matrix, comparison.pooled,
                             comparison.paired)
        transfer = f", {files.transfer_csv} ({len(comparison.matrix)} cells)" if files.transfer_csv else ""
        print(f"wrote {files.csv} ({len(comparison.runs)} rows){transfer}, {files.html} and {len(files.figures)} "
              "figure(s)")
        if not args.no_log:
            run_id = _log_comparison(store.uri, args.experiment, files, len(comparison.runs))
            print(f"logged as comparison run {run_id}")
    return EXIT_OK


def print_pooled(pooled: pd.DataFrame | None) -> None:
    """The DerSimonian–Laird rows of the random-effects pooling (Paule–Mandel ones are in pooled.csv), then the
    sites pooled with a correction or left out, grouped by reason."""
    import pandas as pd

    from medprobe.metrics.display import interval, with_interval

    shown = pooled[pooled["method"] == "dl"] if pooled is not None else None
    if shown is None or shown.empty:
        return
    print(title("pooled across sites (random effects, DerSimonian–Laird: estimate [95 % CI]; PI: 95 % prediction "
                "interval for a new site, from 3 sites)"))
    table = pd.DataFrame({
        "sites": shown["sites"].astype(int),
        "estimate [95 % CI]": [with_interval(r.estimate, r.ci_low, r.ci_high) for r in shown.itertuples()],
        "PI": [interval(r.pi_low, r.pi_high) for r in shown.itertuples()],
        "I²": shown["i2"], "Q p": shown["q_pvalue"]})
    print(format_frame(table.set_axis(pd.MultiIndex.from_frame(shown[["task", "model", "protocol", "metric"]]))))
    lines = grouped_notes(_pooling_notes(shown), indent="    ")
    if lines:
        print("  sites pooled with a correction or not pooled:")
        print("\n".join(lines))


def _pooling_notes(pooled: pd.DataFrame) -> list[tuple[str, str]]:
    """(task/model/protocol (metrics), note) for each site entry of the rows' `corrected` and `left_out` columns."""
    metrics: dict[tuple[str, str], list[str]] = {}
    for row in pooled.itertuples():
        for kind, entries in (("continuity correction", row.corrected), ("left out", row.left_out)):
            for entry in str(entries or "").split(";"):
                if entry:
                    metrics.setdefault((f"{kind}: {entry}", f"{row.task}/{row.model}/{row.protocol}"), []).append(
                        str(row.metric))
    return [(f"{where} ({', '.join(names)})", note) for (note, where), names in metrics.items()]


def print_paired(paired: pd.DataFrame | None) -> None:
    """The paired comparisons of AUROC (classification) and MAE (regression); paired.csv has every metric."""
    import pandas as pd

    from medprobe.compare.report import PAIRED_SHOWN
    from medprobe.metrics.display import count, with_interval

    shown = paired[paired["metric"].isin(PAIRED_SHOWN)] if paired is not None else None
    if shown is None or shown.empty:
        return
    print(title("model vs baseline, paired on the same test subjects (difference model − baseline [95 % CI]; "
                "p_holm: Holm across the rows of a metric)"))
    table = pd.DataFrame({
        "n": shown["n_subjects"].map(count),
        "difference [95 % CI]": [with_interval(r.difference, r.ci_low, r.ci_high) for r in shown.itertuples()],
        "p": shown["p_value"], "p_holm": shown["p_holm"], "DeLong p": shown["delong_p"], "favours": shown["favours"]})
    print(format_frame(table.set_axis(pd.MultiIndex.from_frame(
        shown[["site", "task", "protocol", "model", "baseline", "metric"]]))))


def print_robustness_ranking(ranking: pd.DataFrame) -> None:
    if ranking.empty:
        return
    print(title("robustness: clean accuracy and mean relative drop under the artefacts (mean over sites)"))
    print(format_frame(ranking.set_index(["task", "model"])))


def print_matrices(matrix: pd.DataFrame) -> None:
    """Each train site × test site grid under its title."""
    from medprobe.compare import matrix_tables, matrix_title

    for (model, task, metric), grid in matrix_tables(matrix, readable=True).items():
        print(title(matrix_title(model, task, metric)))
        print(format_frame(grid))


def _log_comparison(uri: str, experiment: str, files: ComparisonFiles, n_runs: int) -> str | None:
    from medprobe.tracking.recorder import RunRecorder

    runs = RunRecorder(uri, experiment)
    run = runs.start_run(COMPARISON, "comparison", {})
    runs.log(run, metrics={"compare/protocol_runs": n_runs})
    extra = [p for p in (files.transfer_csv, files.pooled_csv, *files.tables) if p is not None]
    for path in (files.csv, *extra, files.html, *files.figures):
        runs.log_file(run, path, "comparison")
    runs.finish(run)
    return runs.server_run_id(run)
