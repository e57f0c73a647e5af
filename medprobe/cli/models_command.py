"""`medprobe models`: the model zoo with each model's card; `models fetch` downloads a model's upstream files on a
connected machine (the only command that downloads anything); `models verify` re-checks a carried-in folder against
its lock, without network."""

from __future__ import annotations

import argparse
from pathlib import Path

from medprobe.cli.arguments import positive_seconds
from medprobe.cli.formatting import aligned
from medprobe.exit_codes import EXIT_OK

FETCH_EPILOG = """\
The files land in DIR/NAME/ (DIR/<org>--<name>/ for hf:<org>/<name>), beside medprobe-weights.lock.json: the model,
the source (hub repository and the commit its revision resolved to, or the URL), the medprobe version, the UTC time,
and each file's path, size and sha256. Hub files are checked against the hub's checksums, the checkpoint against the
card's sha256. The last lines printed are `weights: PATH` (the checkpoint file of a single-file model, else the
folder) and, for a checkpoint, `sha256: HEX` to record in your copy of the card ($MEDPROBE_MODEL_ZOO/NAME/card.yaml).
The hub is $HF_ENDPOINT (default https://huggingface.co); gated repositories need a hub login (HF_TOKEN).

Exit codes: 0 fetched (or already there and verified); 2 nothing installed: unknown model or no fetch: section,
download failed, ran past --timeout or was redirected to another origin (the message names the URL or repository),
sha256 mismatch with the card or the hub, or DIR/NAME already holds another model, source or content (--force
replaces it); 1 a bug."""

VERIFY_EPILOG = """\
DIR is a folder written by `medprobe models fetch` (it holds medprobe-weights.lock.json), or a folder of such
folders. Every file in the lock is hashed again; each missing or different file is named, and files the lock does
not list are warnings. No network.

Exit codes: 0 every file matches its lock (warnings allowed); 2 a file is missing or differs, or there is no readable
lock: a data problem, the same code as a weights file that fails its card's sha256 in `medprobe run`; 1 a bug."""


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "models", help="list the model zoo; fetch and verify weights",
        description="Without a subcommand: list the model zoo (name, embedding size, architecture, weights file).",
    )
    parser.set_defaults(handler=handle)
    subcommands = parser.add_subparsers(dest="models_command", metavar="SUBCOMMAND")

    fetch = subcommands.add_parser(
        "fetch", help="download a model's upstream files (connected machine)", epilog=FETCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Download a zoo model's upstream files (its card's fetch: section) and write a lock beside them.",
    )
    fetch.add_argument("name", metavar="NAME", help="a zoo model (`medprobe models`), or hf:<org>/<name> for any hub "
                       "model repository (its whole snapshot)")
    fetch.add_argument("--to", required=True, type=Path, metavar="DIR", help="where to put DIR/NAME/ (created)")
    fetch.add_argument("--revision", metavar="R", help="hub branch, tag or commit (default: the card's, else main)")
    fetch.add_argument("--force", action="store_true",
                       help="replace what DIR/NAME/ holds when its lock records another model, source or content")
    fetch.add_argument("--timeout", type=positive_seconds, default=None, metavar="SECONDS",
                       help="give up when the whole fetch has not finished by then (default: 3 hours)")
    fetch.add_argument("--allow-redirect-host", action="append", default=[], metavar="HOST",
                       help="follow a plain URL's redirect to HOST (repeatable); by default a redirect to another "
                            "scheme, host or port is refused")
    fetch.set_defaults(handler=handle_fetch)

    show = subcommands.add_parser("show", help="print a model's card",
                                  description="A zoo model's card: architecture, embedding, preprocessing, weights "
                                              "file, sha256, source, fetch section, licence, citation.")
    show.add_argument("name", metavar="NAME", help="a zoo model (`medprobe models`) or timm:<architecture>")
    show.set_defaults(handler=handle_show)

    verify = subcommands.add_parser(
        "verify", help="re-check fetched weights against their lock (no network)", epilog=VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Re-hash a fetched folder's files and compare them with its medprobe-weights.lock.json.",
    )
    verify.add_argument("folder", type=Path, metavar="DIR", help="the fetched folder (or a folder of them)")
    verify.set_defaults(handler=handle_verify)


def handle(args: argparse.Namespace) -> int:
    from medprobe.models import available_models, model_card
    from medprobe.models.cards import defaults_label, input_label, licence_label

    rows = []
    for name in available_models():
        card = model_card(name)
        fetch = card.fetch.get("hub") or card.fetch.get("url") or "-"
        rows.append([name, str(card.embed_dim), licence_label(card), input_label(card), defaults_label(card),
                     card.checkpoint_file or "(none needed)", fetch])
    print(aligned(["model", "embedding", "licence", "input", "authors' preprocessing (default)", "weights file",
                   "fetch source"], rows, right_numbers=False))
    print("\n* the licence has conditions. `medprobe models show NAME` prints a model's card: its embedding,\n"
          "preprocessing, weights file and fetch source in full, and the licence with its conditions. The authors'\n"
          "preprocessing applies to the modalities named, for the steps a spec leaves out (model_defaults: false\n"
          "turns it off).")
    return EXIT_OK


def handle_show(args: argparse.Namespace) -> int:
    import dataclasses

    import yaml

    from medprobe.models import model_card

    card = dataclasses.asdict(model_card(args.name))
    print(yaml.safe_dump(card, sort_keys=False, allow_unicode=True, width=118).rstrip())
    return EXIT_OK


def handle_fetch(args: argparse.Namespace) -> int:
    from medprobe.models import available_models, model_card
    from medprobe.models.fetch import fetch_weights
    from medprobe.models.lockfile import LOCK_NAME

    result = fetch_weights(args.name, args.to, revision=args.revision, force=args.force, timeout_s=args.timeout,
                           redirect_hosts=args.allow_redirect_host)
    folder = result.folder.resolve()
    lock = result.lock
    if result.downloaded:
        print(f"fetched {lock.model} from {lock.describe_source()} into {folder}")
    else:
        print(f"already there: {folder} holds {lock.model} from {lock.describe_source()} and matches its lock; "
              "nothing downloaded (--force to fetch again)")
    for entry in lock.files:
        print(f"  {entry.path}  {entry.size} bytes  sha256 {entry.sha256}")
    if lock.model in available_models():
        print(f"licence: {model_card(lock.model).licence}")
    print(f"lock: {folder / LOCK_NAME}")
    print(f"weights: {result.weights.resolve()}")
    if result.checkpoint is not None:
        sha = result.checkpoint.sha256
        if result.card_sha256:
            print(f"sha256: {sha}  (matches the card's)")
        else:
            print(f"sha256: {sha}  (the card records none: put `sha256: {sha}` in your copy of the card, "
                  f"$MEDPROBE_MODEL_ZOO/{lock.model}/card.yaml, to have every load check it)")
    return EXIT_OK


def handle_verify(args: argparse.Namespace) -> int:
    from medprobe.errors import WeightsError
    from medprobe.models.lockfile import lock_folders, verify_folder

    failed: list[str] = []
    for folder in lock_folders(args.folder):
        report = verify_folder(folder)
        lock = report.lock
        for path in report.ok:
            print(f"ok        {path}")
        for path, difference in report.mismatched:
            print(f"MISMATCH  {path}: {difference}")
        for path in report.missing:
            print(f"MISSING   {path}")
        for path in report.extra:
            print(f"warning: {folder / path}: not in the lock (left alone)")
        verdict = "verified" if report.passed else "FAILED"
        print(f"{verdict}: {folder.resolve()} — {lock.model} from {lock.describe_source()}, fetched {lock.fetched_at}: "
              f"{len(report.ok)} of {len(lock.files)} file(s) match, {len(report.mismatched)} differ, "
              f"{len(report.missing)} missing, {len(report.extra)} extra")
        if report.passed:
            print(f"weights: {(folder / lock.weights).resolve()}")
        else:
            failed.append(f"{folder} ({', '.join([p for p, _ in report.mismatched] + report.missing)})")
    if failed:
        raise WeightsError(f"weights do not match their lock: {'; '.join(failed)}; fetch them again on a connected "
                           "machine (`medprobe models fetch`) and carry the folder over")
    return EXIT_OK
