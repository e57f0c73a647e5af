"""`medprobe federate`: federated probe heads with Flower (sites keep their embedding tables).

`simulate` runs the whole federation in this process (Flower's simulation engine, one virtual node per site);
`app` writes the Flower App project that `flwr run` submits to a deployed SuperLink (see
medprobe/federated/README.md for the SuperLink and SuperNode commands).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medprobe.errors import MedprobeError
from medprobe.exit_codes import EXIT_OK


def register(commands: argparse._SubParsersAction) -> None:
    federate = commands.add_parser(
        "federate", help="train and evaluate probe heads across sites with Flower, without pooling data",
        description="Federated probes: only model parameters and aggregate statistics leave a site.",
        epilog="Exit codes: 0 ok, 2 bad arguments / missing table / a site failed, 1 bug.",
    )
    actions = federate.add_subparsers(dest="federate_action", required=True, metavar="ACTION")

    simulate = actions.add_parser(
        "simulate", help="run a federated job locally with Flower's simulation engine (one node per site)",
        description="Each --site NAME=TABLE is one virtual site that reads only its own embedding table; prints "
                    "the final global head's metrics per site and logs one MLflow run with --tracking-uri.",
    )
    simulate.add_argument("--site", action="append", required=True, metavar="NAME=TABLE",
                          help="a site and its embedding table (.parquet); repeat per site")
    _job_arguments(simulate)
    simulate.add_argument("--num-cpus", type=int, default=1, metavar="N", help="CPUs per virtual site (default 1)")
    simulate.add_argument("--flower-logs", action="store_true", help="show Flower's round-by-round log")
    simulate.set_defaults(handler=handle)

    app = actions.add_parser(
        "app", help="write the Flower App project for `flwr run` against a deployed SuperLink",
        description="Writes DIR/pyproject.toml naming medprobe.federated.server_app:app and client_app:app, with "
                    "this job's settings as its run config. Every SuperNode serves one site: "
                    "--node-config 'table=\"PATH\" site=\"NAME\"'.",
    )
    app.add_argument("--out", type=Path, required=True, metavar="DIR", help="project folder to write")
    _job_arguments(app)
    app.set_defaults(handler=handle)


def _job_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", required=True, metavar="COL", help="label column (continuous for ridge)")
    parser.add_argument("--protocol", choices=("linear", "centroid", "ridge"), default="linear",
                        help="linear: FedAvg/FedProx rounds; centroid, ridge: exact one-round aggregation")
    parser.add_argument("--rounds", type=int, default=10, metavar="N", help="federated rounds (linear; default 10)")
    parser.add_argument("--strategy", choices=("fedavg", "fedprox"), default="fedavg")
    parser.add_argument("--mu", type=float, default=0.01, help="FedProx proximal weight (default 0.01)")
    parser.add_argument("--local-iterations", type=int, default=20, metavar="N",
                        help="L-BFGS iterations per round at each site (default 20)")
    parser.add_argument("--alpha", type=float, default=1.0, help="ridge penalty (default 1.0)")
    parser.add_argument("--tracking-uri", default="", metavar="URI", help="MLflow tracking URI (default: no run)")
    parser.add_argument("--experiment", default="medprobe-federated", metavar="NAME", help="MLflow experiment")
    parser.add_argument("--model", default="", help="model name for the run (default: from the tables)")
    parser.add_argument("--task", default="", help="task name for the run (default: the target column)")


def handle(args: argparse.Namespace) -> int:
    from medprobe.federated.settings import FederatedSettings

    settings = FederatedSettings(
        target=args.target, protocol=args.protocol, rounds=args.rounds, strategy=args.strategy, mu=args.mu,
        local_iterations=args.local_iterations, alpha=args.alpha, tracking_uri=args.tracking_uri,
        experiment=args.experiment, model=args.model, task=args.task,
    )
    if args.federate_action == "app":
        return _write_app(args.out, settings)
    return _simulate(settings, [_site(text) for text in args.site], args.num_cpus, args.flower_logs)


def _simulate(settings, sites: list[tuple[str, Path]], num_cpus: int, verbose: bool) -> int:
    from medprobe.federated.server_app import summary_text
    from medprobe.federated.simulation import simulate

    if len(sites) < 2:
        raise MedprobeError("a federation needs at least two --site NAME=TABLE")
    if num_cpus < 1:
        raise MedprobeError(f"--num-cpus must be at least 1, got {num_cpus}")
    result = simulate(settings, sites, num_cpus=num_cpus, verbose=verbose)
    print(summary_text(result))
    if result.run_id:
        print(f"MLflow run {result.run_id} in experiment {settings.experiment!r}")
    return EXIT_OK


def _write_app(folder: Path, settings) -> int:
    from medprobe.federated.deployment import write_app_project

    write_app_project(folder, settings)
    print(f"wrote {folder / 'pyproject.toml'}; run it with: flwr run {folder} <superlink-connection> --stream")
    return EXIT_OK


def _site(text: str) -> tuple[str, Path]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise MedprobeError(f"--site must be NAME=TABLE.parquet, got {text!r}")
    return name, Path(path)
