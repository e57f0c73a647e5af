"""`medprobe pretrain ldae --manifest M --out DIR`: pretrain a zoo encoder on a site's own unlabeled scans."""

from __future__ import annotations

import argparse
from pathlib import Path

from medprobe.cli.arguments import non_negative_int, positive_int
from medprobe.cli.formatting import aligned, number
from medprobe.errors import MedprobeError
from medprobe.exit_codes import EXIT_OK, EXIT_SKIPPED


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "pretrain", help="pretrain a self-supervised encoder (ldae) on the scans of a manifest",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Stage 1 trains a 3D AutoencoderKL, stage 2 a semantic encoder jointly with a latent\n"
                    "diffusion model conditioned on its vector. Checkpoints go to DIR/checkpoints; the trained\n"
                    "model is DIR/ldae.safetensors + DIR/ldae.json, used as `models: [{name: ldae, weights: DIR}]`.\n"
                    "Unreadable images are skipped with a reason. Interrupted runs continue with --resume.",
        epilog="Exit codes: 0 ok, 3 finished but some images were skipped, 2 user error, 1 bug.",
    )
    parser.add_argument("model", choices=["ldae"], help="the model family to pretrain")
    parser.add_argument("--manifest", required=True, type=Path, help="CSV/TSV/Parquet with path and subject_id")
    parser.add_argument("--out", required=True, type=Path, help="output folder (checkpoints, trained model)")
    parser.add_argument("--config", default=None,
                        help="tiny, small, realistic (default) or a YAML file overriding a preset's keys")
    parser.add_argument("--stage1-steps", type=non_negative_int, default=None, help="autoencoder steps")
    parser.add_argument("--stage2-steps", type=non_negative_int, default=None, help="semantic + diffusion steps")
    parser.add_argument("--batch-size", type=positive_int, default=None)
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--workers", type=non_negative_int, default=0, help="reader processes (default 0)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    from medprobe.models.ldae import load_config, pretrain_ldae

    if not args.manifest.is_file():
        raise MedprobeError(f"--manifest {args.manifest}: file not found")
    config = load_config(args.config) if args.config else None
    summary = pretrain_ldae(args.manifest, args.out, config, stage1_steps=args.stage1_steps,
                            stage2_steps=args.stage2_steps, batch_size=args.batch_size, device=args.device,
                            resume=args.resume, progress=not args.no_progress, workers=args.workers)
    print(f"LDAE pretraining ({summary.preset}) on {summary.device} in {summary.seconds:.0f} s: "
          f"{summary.volumes_total} image(s), {summary.volumes_train} for training, "
          f"{summary.volumes_holdout} held out, {len(summary.skipped)} skipped")
    rows = []
    for stage in summary.stages:
        first, last = (stage.log[0], stage.log[-1]) if stage.log else ({}, {})
        rows.append([f"stage {stage.stage}", str(stage.start_step), str(stage.end_step), str(stage.steps_run),
                     number(first.get("loss")), number(last.get("loss"))])
    if rows:
        print(aligned(["stage", "from step", "to step", "run", "first loss", "last loss"], rows))
    if summary.scale_factor is not None:
        print(f"latent scale factor: {summary.scale_factor:.4f}")
    recon = summary.reconstruction
    if recon is not None:
        print(f"reconstruction on {recon.volumes} held-out volume(s), DDIM {recon.ddim_steps} steps: "
              f"SSIM {recon.ssim:.4f}, MSE {recon.mse:.5f} (autoencoder alone: SSIM {recon.autoencoder_ssim:.4f}, "
              f"MSE {recon.autoencoder_mse:.5f})")
    if summary.weights is not None:
        print(f"trained model: {summary.weights} (use `name: ldae, weights: {summary.out}`)")
    else:
        print("no model exported: stage 2 has 0 steps; continue with --resume --stage2-steps N")
    for item in summary.skipped:
        print(f"skipped manifest row {item['row']}: {item['reason']}")
    return EXIT_SKIPPED if summary.skipped else EXIT_OK
