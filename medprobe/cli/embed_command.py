"""`medprobe embed`: embed a manifest with one model into an embedding table (the same engine as `medprobe run`).

Under torchrun (`torchrun --nproc_per_node 4 -m medprobe.cli.main embed ...`) each process embeds its share of
the pending samples on its own GPU into the shared cache and rank 0 writes the table.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from medprobe.cli.arguments import non_negative_int, positive_int
from medprobe.errors import MedprobeError
from medprobe.exit_codes import EXIT_OK, EXIT_SKIPPED

if TYPE_CHECKING:  # the engine imports torch; keep `medprobe --help` fast
    import pandas as pd

    from medprobe.embed import EmbedResult
    from medprobe.pipeline_spec import PipelineSpec
    from medprobe.preprocess.options import PreprocessOptions

MODALITIES = ("mri", "ct", "xray", "fundus", "photo", "other")
#: Manifest columns that are not labels; every other column is copied into the table.
NON_LABEL_COLUMNS = frozenset({"path", "subject_id", "site", "split", "sample_id", "series_uid"})


def register(commands: argparse._SubParsersAction) -> None:
    embed = commands.add_parser(
        "embed", help="embed a manifest's images with one model into an embedding table (Parquet)",
        description="Writes OUT/embeddings.parquet (sample_id, salted subject_id, site, split, every other "
                    "manifest column as a label, embedding), a resumable cache in OUT/cache and, when inputs "
                    "were skipped, OUT/quarantine.csv (pseudonyms and categories; paths and the readers' messages "
                    "only in OUT/local-only/skipped-files.csv). Re-running resumes: cached samples are not "
                    "recomputed. Pseudonyms: with --spec, the site and the subject salt are the spec's (its "
                    "workdir's subject-salt.txt), so the table's sample_id and subject_id match `medprobe run SPEC`; "
                    "without --spec the salt is kept in OUT/subject-salt.txt; $MEDPROBE_SUBJECT_SALT, when set, "
                    "wins over both.",
        epilog="Exit codes: 0 ok, 3 completed with skipped inputs, 2 user error. Multi-GPU: "
               "torchrun --nproc_per_node N -m medprobe.cli.main embed ...",
    )
    embed.add_argument("--model", required=True, metavar="NAME", help="zoo model name or timm:<architecture>")
    embed.add_argument("--weights", metavar="PATH", help="checkpoint; without it the network is random-init")
    embed.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                       help="model option, repeatable (e.g. input_size=224, pooling=cls+mean)")
    embed.add_argument("--manifest", metavar="M",
                       help="manifest (CSV, TSV or Parquet); default: the --spec's data.manifest")
    embed.add_argument("--out", required=True, metavar="DIR", help="output folder")
    embed.add_argument("--modality", choices=MODALITIES, default=None,
                       help="selects the default preprocessing (intensity step); default: the --spec's, else other "
                            "(scale to 0-1)")
    embed.add_argument("--spec", type=Path, metavar="SPEC",
                       help="take modality, preprocessing, manifest, site and subject salt from a job spec, so the "
                            "table (embeddings and pseudonyms) matches what `medprobe run SPEC` embeds")
    embed.add_argument("--preprocessing", type=Path, metavar="YAML",
                       help="a preprocessing block (the keys of a spec's `data.preprocessing`: orientation, spacing, "
                            "intensity, size, fit, volume_to_2d); wins over the --spec's")
    embed.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                       help="auto: bf16 on a GPU; on a CPU bf16 only if a calibration batch keeps cosine >= 0.999")
    embed.add_argument("--batch-size", type=positive_int, default=32, metavar="N")
    embed.add_argument("--workers", type=non_negative_int, default=1, metavar="N", help="data-loading processes")
    embed.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    embed.add_argument("--site", metavar="NAME",
                       help="site name for the table; with a 'site' column in the manifest, only its rows are "
                            "embedded (default: the --spec's site, else each row's 'site' value)")
    embed.add_argument("--no-progress", action="store_true", help="no progress bar (batch logs)")
    embed.add_argument("--tokens", action="store_true",
                       help="also keep the patch tokens (float16, OUT/embeddings.tokens.npy) for the attentive probe")

    embed.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from medprobe.embed import launched_ranks

    out = Path(args.out)
    # One job per output folder. Under torchrun the ranks of one job share OUT: rank 0 holds it for all of them
    # (the other ranks write nothing before they meet rank 0, so those of a refused job never write at all).
    with _hold(out) if launched_ranks().leader else contextlib.nullcontext():
        return _embed(args, out)


def _hold(out: Path) -> contextlib.AbstractContextManager[object]:
    from medprobe.jobs.workdir_lock import hold_workdir

    return hold_workdir(out)


def _embed(args: argparse.Namespace, out: Path) -> int:
    from medprobe.embed import EmbedSettings, embed_manifest, launched_ranks, resolve_device
    from medprobe.embed.pseudonyms import command_salt
    from medprobe.models import load_encoder
    from medprobe.pipeline_spec import load_manifest, load_spec
    from medprobe.preprocess import PreprocessChain

    spec = load_spec(args.spec) if args.spec else None
    preprocessing = _preprocess_options(args, spec)
    options = _options(args.option)
    site = _site(args.site, spec)
    manifest_path = Path(args.manifest) if args.manifest else _spec_manifest(spec)
    manifest = _site_rows(load_manifest(manifest_path), site, manifest_path)
    encoder = load_encoder(args.model, args.weights, **options)
    ranks = launched_ranks()
    device = resolve_device(args.device, ranks.local_rank if ranks.world > 1 else None)
    chain = PreprocessChain(preprocessing, encoder.preprocessing)
    salt = command_salt(spec.workdir if spec else None, out)
    assert salt is not None  # an output folder always stands for the workdir
    settings = EmbedSettings(
        site=site,
        salt=salt,
        label_columns=tuple(c for c in manifest.columns if c not in NON_LABEL_COLUMNS),
        modality=preprocessing.modality,
        batch_size=args.batch_size,
        precision=args.precision,
        device=device,
        num_workers=args.workers,
        progress=not args.no_progress,
        tokens=args.tokens,
    )
    if args.tokens and encoder.token_dim is None:
        raise MedprobeError(f"--tokens: model '{encoder.name}' does not expose patch tokens")
    say = print if ranks.leader else _quiet
    say(f"medprobe embed: {encoder.name} ({encoder.weights_label}) on {len(manifest)} sample(s), device {device}"
        + (f", {ranks.world} processes" if ranks.world > 1 else ""))
    if not encoder.pretrained:
        say("  WARNING: no weights given, using a RANDOM-INIT network (a smoke test or a control)")
    result = embed_manifest(manifest, encoder, chain, out / "cache", settings, out / "embeddings.parquet")
    quarantine = _write_quarantine(out, encoder.name, manifest, result) if ranks.leader else None
    for line in _summary(result, quarantine):
        say(line)
    return EXIT_SKIPPED if result.skipped else EXIT_OK


def _site(given: str | None, spec: PipelineSpec | None) -> str | None:
    """--site, else the spec's site; a --site that names another site than the spec's is an error (its rows
    would carry the spec's salt under another site's name)."""
    if spec is None:
        return given
    if given is not None and given != spec.site:
        raise MedprobeError(f"--site {given!r} differs from the --spec's site {spec.site!r}: leave --site out, or "
                            "embed without --spec")
    return spec.site


def _spec_manifest(spec: PipelineSpec | None) -> Path:
    if spec is None:
        raise MedprobeError("embed needs --manifest M, or --spec SPEC to embed the spec's data.manifest")
    return spec.data.manifest


def _preprocess_options(args: argparse.Namespace, spec: PipelineSpec | None) -> PreprocessOptions:
    """--spec's data section, then --modality and --preprocessing over it; checked before any model loads."""
    from medprobe.pipeline_spec.loading import read_yaml, validated
    from medprobe.preprocess.options import Preprocessing, PreprocessOptions

    base = spec.data if spec is not None else PreprocessOptions(modality="other")
    update: dict[str, object] = {"modality": args.modality or base.modality}
    if args.preprocessing:
        update["preprocessing"] = validated(Preprocessing, read_yaml(args.preprocessing), args.preprocessing)
    return PreprocessOptions(modality=base.modality, preprocessing=base.preprocessing).model_copy(update=update)


def _site_rows(manifest: pd.DataFrame, site: str | None, source: Path) -> pd.DataFrame:
    from medprobe.jobs.datasets import site_rows

    if "site" not in manifest.columns and site is None:
        raise MedprobeError(f"{source}: no 'site' column; name the site with --site NAME")
    return site_rows(manifest, site, source)


def _options(pairs: list[str]) -> dict[str, str | int | float | bool]:
    options: dict[str, str | int | float | bool] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise MedprobeError(f"--option {pair!r}: expected KEY=VALUE, e.g. --option input_size=224")
        options[key.strip()] = _value(text.strip())
    return options


def _value(text: str) -> str | int | float | bool:
    if text.lower() in {"true", "false"}:
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _write_quarantine(out: Path, model: str, manifest: pd.DataFrame, result: EmbedResult) -> Path | None:
    """`OUT/quarantine.csv` (pseudonyms and categories) and the local log of paths and details under `local-only/`."""
    from medprobe.embed.quarantine import quarantine_rows, write_quarantine

    return write_quarantine(out, quarantine_rows(model, result.skipped, manifest["path"].astype(str).tolist()))


def _summary(result: EmbedResult, quarantine: Path | None) -> list[str]:
    from medprobe.embed.tokens import tokens_path

    total = result.seconds.get("total", 0.0)
    rate = f"{result.computed / total:.1f} samples/s computed" if result.computed and total else "nothing computed"
    lines = [f"embedded {len(result)}: {result.computed} computed, {result.cached} cached, "
             f"{len(result.skipped)} skipped · {rate} · {total:.1f} s"]
    if result.calibration_cosine is not None:
        lines.append(f"precision: {result.precision} (auto: bf16/fp32 mean cosine "
                     f"{result.calibration_cosine:.5f} on a calibration batch; bf16 needs >= 0.999)")
    else:
        lines.append(f"precision: {result.precision}")
    if result.table_path is not None:
        lines.append(f"table: {result.table_path}")
        tokens = result.tokens()
        if tokens is not None:
            lines.append(f"patch tokens: {tokens.shape[1]} x {tokens.shape[2]} per sample (float16), "
                         f"{tokens_path(result.table_path)}")
    if quarantine is not None:
        lines.append(f"skipped inputs: {len(result.skipped)}, quarantine report: {quarantine}")
    return lines


def _quiet(_: str) -> None:
    return None
