"""`medprobe evaluate --embeddings FILE --target COL`: probe an embedding table; write metrics, predictions, plots."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from medprobe.cli.arguments import non_negative_int, positive_int, seed_int
from medprobe.errors import ProbeError
from medprobe.exit_codes import EXIT_OK, EXIT_SKIPPED
from medprobe.options import field_default
from medprobe.probes.options import ProtocolOptions
from medprobe.probes.registry import TASK_TYPES, check_protocols, default_protocols, protocols

if TYPE_CHECKING:
    from medprobe.evaluation import EvaluationResult
    from medprobe.evaluation.options import AnalysisOptions


def register(commands: argparse._SubParsersAction) -> None:
    evaluate = commands.add_parser(
        "evaluate", help="probe an embedding table (medprobe's, or your own Parquet) with linear, k-NN, few-shot, "
                         "attentive",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Reads a Parquet table with columns subject_id, the target column and `embedding` (a list of\n"
                    "floats per row; sample_id and split optional) and writes DIR/metrics.json (point metrics,\n"
                    "95 % subject-bootstrap intervals, notes, parameters per protocol), DIR/predictions/*.parquet\n"
                    "(subject ids pseudonymised) and DIR/plots/*.png. With a `split` column (train/val/test) the\n"
                    "probes fit on train (+ val) and test on test; without one they cross-validate by subject.",
        epilog="Exit codes: 0 ok, 2 bad file / missing column / bad arguments, 3 some protocol could not run.",
    )
    evaluate.add_argument("--embeddings", required=True, type=Path, metavar="FILE", help="embedding table (.parquet)")
    evaluate.add_argument("--target", required=True, metavar="COL", help="label column to predict")
    evaluate.add_argument("--task", choices=TASK_TYPES, default=TASK_TYPES[0])
    evaluate.add_argument("--protocols", type=protocol_list, default=",".join(default_protocols()), metavar="P[,P]",
                          help=_protocols_help())
    evaluate.add_argument("--out", type=Path, default=Path("medprobe-evaluate"), metavar="DIR",
                          help="output folder (default: ./medprobe-evaluate)")
    evaluate.add_argument("--seeds", type=positive_int, default=field_default(ProtocolOptions, "seeds"), metavar="N",
                          help="repeat each protocol with N seeds and report mean and spread (default %(default)s)")
    evaluate.add_argument("--seed", type=seed_int, default=0, help="first seed (default %(default)s)")
    evaluate.add_argument("--bootstrap", type=non_negative_int, default=field_default(ProtocolOptions, "bootstrap"),
                          metavar="B", help="subject-bootstrap resamples for the 95 %% intervals (0: none; default "
                                            "%(default)s)")
    evaluate.add_argument("--ordinal", action="store_true", help="labels are ordered grades: quadratic kappa")
    evaluate.add_argument("--device", default=None, help="torch device for the probes, e.g. cuda (default cpu)")
    evaluate.add_argument("--tracking-uri", default=None,
                          help="MLflow URI (default: $MLFLOW_TRACKING_URI, else sqlite:///DIR/mlflow.db)")
    evaluate.add_argument("--experiment", default="medprobe/evaluate", help="MLflow experiment name")
    evaluate.add_argument("--model", default=None,
                          help="model label for the runs (default: the table's metadata, else the file name)")
    evaluate.add_argument("--no-track", dest="track", action="store_false",
                          help="write the files only; log nothing to MLflow")
    evaluate.add_argument("--subgroups", default="", metavar="COL[,COL]",
                          help="table columns to score each group of (subgroups.csv, subgroup_gaps.csv)")
    evaluate.add_argument("--bins", action="append", default=[], metavar="COL=E0,E1,...",
                          help="a numeric column cut at these edges into subgroups (repeatable), e.g. age=0,40,65,120")
    evaluate.add_argument("--label-efficiency", action="store_true",
                          help="refit the linear probe on 1, 2, 5, 10, 25, 50, 100 %% of the training subjects "
                               "(label_efficiency.csv)")
    evaluate.set_defaults(handler=handle)


def protocol_list(text: str) -> list[str]:
    """`--protocols`: comma-separated registered protocols (`medprobe.probes.registry`)."""
    try:
        return check_protocols(p.strip() for p in text.split(",") if p.strip())
    except ProbeError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _protocols_help() -> str:
    tokens = [entry.name for entry in protocols() if entry.tokens]
    reads = f"; {', '.join(tokens)} read(s) the patch tokens beside the table (`medprobe embed --tokens`)"
    return (f"comma-separated, from {', '.join(entry.name for entry in protocols())} (default: "
            f"{','.join(default_protocols())}){reads if tokens else ''}")


def handle(args: argparse.Namespace) -> int:
    from medprobe.evaluation import evaluate_file
    from medprobe.metrics.bootstrap import is_interval_key

    names = args.protocols
    common = {"seeds": args.seeds, "bootstrap": args.bootstrap, "ordinal": args.ordinal}
    outcome = evaluate_file(
        args.embeddings, args.target, args.out, task_type=args.task,
        protocols={protocol: common for protocol in names}, seed=args.seed, device=args.device,
        analysis=_analysis(args),
    )
    for protocol, result in outcome.results.items():
        shown = ", ".join(f"{k} {v:.3f}" for k, v in result.metrics.items()
                          if "/" not in k and not is_interval_key(k) and not k.endswith("_seed_std"))
        print(f"{protocol}: {shown or 'no metrics'} (n_test {result.n_test})")
        for note in result.notes:
            print(f"  note: {note}")
    for protocol, reason in outcome.failures.items():
        print(f"{protocol}: could not run: {reason}")
    print(f"wrote {args.out / 'metrics.json'} and {len(outcome.written) - 1} other file(s)")
    if args.track and outcome.results:
        _track(args, outcome)
    return EXIT_SKIPPED if outcome.failures else EXIT_OK


def _analysis(args: argparse.Namespace) -> AnalysisOptions | None:
    """The subgroup and label-efficiency options the flags ask for; None when they ask for neither."""
    from pydantic import ValidationError

    from medprobe.errors import MedprobeError
    from medprobe.evaluation.options import AnalysisOptions, LabelEfficiencyOptions, SubgroupOptions
    from medprobe.options import format_validation_error

    columns = [c.strip() for c in args.subgroups.split(",") if c.strip()]
    bins = {}
    for item in args.bins:
        column, _, edges = item.partition("=")
        try:
            bins[column.strip()] = [float(e) for e in edges.split(",")]
        except ValueError:
            raise MedprobeError(f"--bins {item!r}: write COLUMN=EDGE,EDGE,... with numbers, e.g. age=0,40,65,120"
                                ) from None
    if not (columns or bins or args.label_efficiency):
        return None
    try:
        subgroups = SubgroupOptions(columns=columns, bins=bins, bootstrap=args.bootstrap) if columns or bins else None
    except ValidationError as exc:
        raise MedprobeError(f"--subgroups/--bins: {format_validation_error(exc)}") from None
    return AnalysisOptions(subgroups=subgroups,
                           label_efficiency=LabelEfficiencyOptions() if args.label_efficiency else None)


def _track(args: argparse.Namespace, outcome: EvaluationResult) -> None:
    from medprobe.embed.table import read_metadata
    from medprobe.jobs.evaluation_runs import log_evaluation
    from medprobe.tracking.recorder import RunRecorder
    from medprobe.tracking.uri import chosen_uri

    uri = chosen_uri(args.tracking_uri, f"sqlite:///{args.out.resolve() / 'mlflow.db'}")
    metadata = read_metadata(args.embeddings)
    model = args.model or str(metadata.get("model") or args.embeddings.stem)
    runs = RunRecorder(uri, args.experiment)
    run = log_evaluation(runs, outcome, metadata, model, args.out)
    print(f"tracking: {runs.display_uri} · experiment '{args.experiment}' · run {runs.server_run_id(run)}")
