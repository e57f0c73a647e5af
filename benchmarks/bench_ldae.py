"""LDAE's headline claims, reproduced in miniature on a phantom study with known factors, on a CPU.

    python benchmarks/bench_ldae.py [--out DIR] [--subjects 80] [--config small] [--quick] [--reuse]

1. Writes a longitudinal phantom study (`medprobe.demo.phantom`: age = atrophy, disease = hippocampal shrinkage,
   three scanners, three sessions 18 months apart per subject) as NIfTI files with a manifest.
2. Pretrains LDAE (`medprobe pretrain ldae`'s function) on the sessions of all subjects but the held-out ones
   (15 %), which serve the reconstruction and interpolation figures.
3. Embeds every session with (a) the pretrained semantic encoder, (b) the same network random-init (the control),
   (c) the handcrafted baseline, and probes age (regression, MAE) and disease (AUROC) with medprobe's linear
   probe under subject-grouped 5-fold cross-validation; 95 % intervals by subject bootstrap.
4. Semantic interpolation between each held-out subject's first and last session at the middle session's time
   fraction, scored against the real middle session (3D SSIM and MSE, as the paper), beside two references: the
   voxel-wise blend of the two scans and the autoencoder's own reconstruction of the middle session (the ceiling).
5. Embedding time per volume: the semantic encoder against a DDIM-inversion embedding (100 steps) of the same
   network, alternating in one process.

Prints everything beside the paper's figures (LDAE, arXiv 2504.08635: ADNI, 128×160×128, GPU days). Absolute
values are not comparable — 32³ phantoms, minutes of CPU — the structure and the orderings are. `--quick`: 24
subjects and the step counts of `tests/models/ldae/test_ldae_learns.py` (the autoencoder is barely trained:
only the orderings mean anything), about 3.5 minutes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from medprobe.api import embed_images, evaluate, load_encoder
from medprobe.cli.formatting import aligned
from medprobe.demo.phantom import write_phantom_study
from medprobe.io import read_image
from medprobe.models.ldae import LatentDiffusionAutoencoder, load_config, pretrain_ldae
from medprobe.models.ldae.codes import encode
from medprobe.models.ldae.data import preprocess_chain
from medprobe.models.ldae.encoder import load_trained_model
from medprobe.models.ldae.interpolation import interpolate
from medprobe.models.ldae.reconstruction import volume_mse, volume_ssim
from medprobe.preprocess import PreprocessChain

PAPER = {"disease AUROC": "0.90 (AD vs CN)", "age MAE (years)": "4.1", "interpolation SSIM": "0.969",
         "interpolation MSE": "-", "reconstruction SSIM": "0.962", "embedding speed-up": "~20× (vs voxel DAE)"}
HELD_OUT_FRACTION = 0.15


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/medprobe_bench_ldae"))
    parser.add_argument("--subjects", type=int, default=None, help="default 80 (24 with --quick)")
    parser.add_argument("--config", default="small", help="preset or YAML config (default small)")
    parser.add_argument("--quick", action="store_true", help="the test's small study and step counts")
    parser.add_argument("--reuse", action="store_true", help="continue a pretraining run already in --out")
    parser.add_argument("--timing-volumes", type=int, default=4)
    args = parser.parse_args()

    subjects = args.subjects or (24 if args.quick else 80)
    study = write_phantom_study(args.out / "study", n_subjects=subjects)
    table = study.table
    held = table[table["subject_id"].isin(held_out_subjects(table))]
    manifest = held_out_manifest(table, held, args.out / "study")
    run = args.out / "ldae"
    steps = {"stage1_steps": 120, "stage2_steps": 200, "batch_size": 4} if args.quick else {}
    started = time.monotonic()
    summary = pretrain_ldae(manifest, run, load_config(args.config), device="cpu", resume=args.reuse,
                            progress=True, **steps)
    train_minutes = (time.monotonic() - started) / 60
    print(f"\npretrained {summary.preset!r} on {summary.volumes_train} volumes in {train_minutes:.1f} min "
          f"({', '.join(f'stage {s.stage}: {s.steps_run} steps' for s in summary.stages)})")

    paths = [str(args.out / "study" / p) for p in table["path"]]
    probes = {label: probe(table, embed_images(paths, encoder, modality="mri"))
              for label, encoder in (("(a) pretrained", load_encoder("ldae", run)),
                                     ("(b) random-init", load_encoder("ldae", None, config=args.config)),
                                     ("(c) handcrafted", load_encoder("handcrafted")))}
    model = load_trained_model(run)
    chain = preprocess_chain(model.config)
    timed = list(table["path"][: args.timing_volumes])
    volumes = {p: load_volume(chain, args.out / "study" / p) for p in {*held["path"], *timed}}
    interp = interpolation_scores(model, held, volumes)
    timing = embedding_times(model, [volumes[p] for p in timed])
    recon = summary.reconstruction

    rows = [["disease AUROC", *(fmt(probes[k]["disease"]) for k in probes), PAPER["disease AUROC"]],
            ["age MAE (years)", *(fmt(probes[k]["age"]) for k in probes), PAPER["age MAE (years)"]]]
    print(f"\nLinear probe, subject-grouped 5-fold CV on {len(table)} sessions of {subjects} subjects "
          "(95 % subject-bootstrap intervals)")
    print(aligned(["", *probes, "paper"], rows))
    print(f"\nInterpolation, first→last session of {held['subject_id'].nunique()} held-out subjects, scored against "
          "the real middle session")
    print(aligned(["", "LDAE interpolation", "voxel blend", "autoencoder ceiling", "paper"], [
        ["SSIM", *(f"{interp[k][0]:.3f}" for k in ("ldae", "blend", "ceiling")), PAPER["interpolation SSIM"]],
        ["MSE", *(f"{interp[k][1]:.5f}" for k in ("ldae", "blend", "ceiling")), PAPER["interpolation MSE"]],
    ]))
    if recon is not None:
        print(f"\nReconstruction of {recon.volumes} held-out volumes (DDIM {recon.ddim_steps} steps): SSIM "
              f"{recon.ssim:.3f}, MSE {recon.mse:.5f}; autoencoder alone SSIM {recon.autoencoder_ssim:.3f} "
              f"(paper: {PAPER['reconstruction SSIM']})")
    print(f"\nEmbedding time per volume (median of {args.timing_volumes}): semantic encoder "
          f"{timing['semantic'] * 1e3:.1f} ms, DDIM-inversion embedding (100 steps) "
          f"{timing['inversion'] * 1e3:.0f} ms: {timing['inversion'] / timing['semantic']:.0f}× "
          f"(paper: {PAPER['embedding speed-up']})")
    verdict(probes)


def held_out_manifest(table: pd.DataFrame, held: pd.DataFrame, folder: Path) -> Path:
    """The study's manifest with split=test on the held-out rows (pretraining never sees them)."""
    marked = table.assign(split=np.where(table.index.isin(held.index), "test", "train"))
    path = folder / "pretrain_manifest.csv"
    marked.to_csv(path, index=False)
    return path


def held_out_subjects(table: pd.DataFrame) -> list[str]:
    subjects = sorted(table["subject_id"].unique())
    return subjects[:: max(2, round(1 / HELD_OUT_FRACTION))]


def probe(table: pd.DataFrame, X: np.ndarray) -> dict[str, tuple[float, float, float]]:
    """(value, ci_low, ci_high) of the linear probe's MAE for age and AUROC for disease."""
    frame = table[["subject_id", "age", "disease"]].copy()
    scores = {}
    for target, task, metric in (("age", "regression", "mae"), ("disease", "classification", "auroc")):
        summary = evaluate(frame, target, task, protocols=["linear"], embeddings=X).summary()
        row = summary[summary["metric"] == metric].iloc[0]
        scores[target] = (float(row["value"]), float(row["ci_low"]), float(row["ci_high"]))
    return scores


def load_volume(chain: PreprocessChain, path: Path) -> torch.Tensor:
    return chain(read_image(str(path), "mri"), source=str(path))[0].clamp(0, 1)


def interpolation_scores(model: LatentDiffusionAutoencoder, held: pd.DataFrame, volumes: dict[str, torch.Tensor]
                         ) -> dict[str, tuple[float, float]]:
    """Mean (SSIM, MSE) against each held-out subject's middle session: LDAE, voxel blend, autoencoder ceiling."""
    scores: dict[str, list[tuple[float, float]]] = {"ldae": [], "blend": [], "ceiling": []}
    for _, sessions in held.sort_values("session").groupby("subject_id"):
        if len(sessions) < 3:
            continue
        first, middle, last = (volumes[p][None] for p in sessions["path"].iloc[[0, len(sessions) // 2, -1]])
        months = sessions["months"].to_numpy(float)
        alpha = (months[len(sessions) // 2] - months[0]) / (months[-1] - months[0])
        candidates = {"ldae": interpolate(model, first, last, alpha),
                      "blend": torch.lerp(first, last, alpha),
                      "ceiling": model.autoencoder.reconstruct(middle).clamp(0, 1)}
        for key, volume in candidates.items():
            scores[key].append((float(volume_ssim(volume, middle)[0]), float(volume_mse(volume, middle)[0])))
    return {k: (float(np.mean([s for s, _ in v])), float(np.mean([m for _, m in v]))) for k, v in scores.items()}


@torch.no_grad()
def embedding_times(model: LatentDiffusionAutoencoder, volumes: list[torch.Tensor]) -> dict[str, float]:
    """Median seconds per volume, the two embeddings alternating volume by volume."""
    times: dict[str, list[float]] = {"semantic": [], "inversion": []}
    for volume in volumes:
        x = volume[None]
        start = time.perf_counter()
        model.semantic(x)
        middle = time.perf_counter()
        encode(model, x, 100)
        times["semantic"].append(middle - start)
        times["inversion"].append(time.perf_counter() - middle)
    return {k: statistics.median(v) for k, v in times.items()}


def verdict(probes: dict[str, dict[str, tuple[float, float, float]]]) -> None:
    """The issue's target: (a) beats (b) with non-overlapping intervals on both factors."""
    (a, b) = probes["(a) pretrained"], probes["(b) random-init"]
    age = a["age"][2] < b["age"][1]
    disease = a["disease"][1] > b["disease"][2]
    print(f"\npretrained beats random-init with non-overlapping intervals: age {'yes' if age else 'NO'}, "
          f"disease {'yes' if disease else 'NO'}")


def fmt(score: tuple[float, float, float]) -> str:
    value, low, high = score
    return f"{value:.3g} [{low:.3g}, {high:.3g}]"


if __name__ == "__main__":
    main()
