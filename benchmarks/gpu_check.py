"""The GPU check: the figures only a CUDA machine can give, in one command of a few minutes (under 8 on one GPU).

    python benchmarks/gpu_check.py                      # on a CUDA machine
    python benchmarks/gpu_check.py --device cpu --quick # checks the script itself on a CPU (not a figure)

Prints one table, a row per figure:
1. extraction: images/s of `embed_manifest` from PNG files (cold cache) against the bare `encoder.encode` on
   preloaded, preprocessed tensors, for DINOv2 ViT-S/B/L at 224 (random init: it costs what the pretrained one
   does), in bf16 autocast and fp32; the ratio engine/bare per row;
2. bf16 against fp32: the centred cosine of the engine's embeddings (minus the fp32 mean), per model;
3. the linear probe (C grid, validation split, 1000-resample bootstrap) on the GPU against the CPU on the same
   embeddings: the largest metric difference and the speed ratio;
4. the LDAE preset's step time and peak memory, both stages, batch 1 and 2 (bf16 autocast, as `medprobe pretrain
   ldae` trains);
5. `torchrun --nproc_per_node 1 medprobe embed` on the GPU: images/s and the largest difference from the
   single-process table;
6. the 3D models (`bench_3d.py`): volumes/s from NIfTI through each model's own preprocessing (the authors' chain)
   against the bare forward, CT-FM, VoCo-B, Merlin, MedicalNet-50 and BrainIAC (random init), 16 volumes each.
Without a CUDA device and `--device cuda` (the default) it says so in one line and exits 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from medprobe.cli.formatting import aligned

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_3d import MODELS as MODELS_3D
from bench_3d import volume_rows
from bench_extraction import cosine, write_pngs  # the benchmark next door writes the same PNGs

WARMUP = 2
MODELS = ("dinov2_vits14", "dinov2_vitb14", "dinov2_vitl14")
Row = list[str]


def extraction_rows(device: torch.device, models: tuple[str, ...], images: int, batch: int, workers: int,
                    folder: Path) -> list[Row]:
    """Sections 1 and 2."""
    from medprobe.embed import EmbedSettings, embed_manifest
    from medprobe.embed.device import autocast
    from medprobe.io import read_image
    from medprobe.models import load_encoder
    from medprobe.pipeline_spec import DataSpec, load_manifest
    from medprobe.preprocess import PreprocessChain

    manifest_path = write_pngs(folder, images)
    manifest = load_manifest(manifest_path, ["label"])
    rows = []
    for name in models:
        encoder = load_encoder(name, input_size=224).to(device)
        chain = PreprocessChain(DataSpec(manifest=manifest_path, modality="photo"), encoder.preprocessing)
        views = torch.cat([chain(read_image(p, "photo")) for p in manifest["path"]]).to(device)
        vectors = {}
        for precision in ("fp32", "bf16"):
            with autocast(precision, device):
                encoder.encode(views[:batch])  # warm-up: kernels, allocator
            _sync(device)
            started = time.perf_counter()
            with autocast(precision, device):
                for start in range(0, len(views), batch):
                    encoder.encode(views[start : start + batch])
            _sync(device)
            bare = images / (time.perf_counter() - started)
            settings = EmbedSettings(site="gpu", salt=b"gpu", label_columns=("label",), modality="photo",
                                     batch_size=batch, precision=precision, device=device, num_workers=workers,
                                     progress=False)
            cache = folder / f"cache-{name}-{precision}"
            started = time.perf_counter()
            result = embed_manifest(manifest, encoder, chain, cache, settings, folder / f"{name}-{precision}.parquet")
            engine = images / (time.perf_counter() - started)
            vectors[precision] = result.embeddings()
            rows.append([f"extraction {name} @224", precision, f"{engine:.1f} img/s", f"bare {bare:.1f} img/s",
                         f"{engine / bare:.2f}"])
        centre = vectors["fp32"].mean(0)
        rows.append([f"bf16 vs fp32 {name}", "centred cosine",
                     f"{cosine(vectors['bf16'] - centre, vectors['fp32'] - centre):.5f}", "goal >= 0.999", ""])
        del encoder, views
        _free(device)
    return rows


def probe_rows(device: torch.device, n: int, dim: int) -> list[Row]:
    """Section 3: the linear probe's numbers and time on the GPU against the CPU."""
    from medprobe.probes import evaluate_protocol

    rng = np.random.default_rng(0)
    subjects = np.repeat(np.arange(n // 2), 2).astype(str)
    y = np.repeat(rng.integers(0, 5, n // 2), 2)
    X = (rng.normal(size=(n, dim)) + 0.3 * rng.normal(size=(5, dim))[y]).astype(np.float32)
    split = np.repeat(rng.choice(["train", "val", "test"], p=[0.6, 0.2, 0.2], size=n // 2), 2)
    timings, metrics = {}, {}
    for where in ("cpu", device.type):
        evaluate_protocol("linear", {"bootstrap": 0}, X[:200], y[:200], "classification", subjects[:200],
                          split[:200], device=where)  # warm-up
        started = time.perf_counter()
        result = evaluate_protocol("linear", {}, X, y, "classification", subjects, split, device=where)
        _sync(device)
        timings[where] = time.perf_counter() - started
        metrics[where] = result.metrics
    shared = [k for k in metrics["cpu"] if k in metrics[device.type]]
    largest = max(abs(metrics["cpu"][k] - metrics[device.type][k]) for k in shared)
    ratio = timings["cpu"] / timings[device.type]
    return [[f"linear probe {n}x{dim}, 5 classes", f"{device.type} vs cpu", f"{timings[device.type]:.2f} s",
             f"cpu {timings['cpu']:.2f} s; max metric diff {largest:.1e}", f"{ratio:.1f}"]]


def ldae_rows(preset: str, device: torch.device, batch_sizes: list[int], steps: int) -> list[Row]:
    """Section 4."""
    from medprobe.models.ldae import LatentDiffusionAutoencoder, load_config
    from medprobe.models.ldae.training import stage1_loss, stage2_loss, training_autocast

    config = load_config(preset)
    config = config.model_copy(update={"train": config.train.model_copy(update={"bf16": True})})
    rows = []
    for batch in batch_sizes:
        model = LatentDiffusionAutoencoder(config).to(device)
        x = torch.rand(batch, 1, *config.data.size, device=device)
        for stage, loss_fn, params in (
            (1, stage1_loss(model, config.train.kl_weight), list(model.autoencoder.parameters())),
            (2, stage2_loss(model, config), [*model.semantic.parameters(), *model.unet.parameters()]),
        ):
            optimizer = torch.optim.Adam(params, lr=1e-5)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            times = []
            for step in range(WARMUP + steps):
                started = time.perf_counter()
                optimizer.zero_grad(set_to_none=True)
                with training_autocast(config, device):
                    loss, _ = loss_fn(x)
                loss.backward()
                optimizer.step()
                _sync(device)
                if step >= WARMUP:
                    times.append(time.perf_counter() - started)
            peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
            rows.append([f"ldae {preset} stage {stage}", f"batch {batch}", f"{statistics.median(times):.3f} s/step",
                         f"peak {peak:.1f} GiB", ""])
            del optimizer
        del model, x
        _free(device)
    return rows


def torchrun_rows(device: torch.device, folder: Path, batch: int) -> list[Row]:
    """Section 5: one rank under torchrun against the single-process table of section 1 (ViT-S, fp32)."""
    from medprobe.embed.table import read_table

    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    if not Path(torchrun).exists() and shutil.which("torchrun") is None:
        return [["torchrun embed", "1 rank", "torchrun not installed", "", ""]]
    args = [torchrun, "--standalone", "--nproc_per_node", "1", "-m", "medprobe.cli.main", "embed", "--model",
            "dinov2_vits14", "--option", "input_size=224", "--manifest", str(folder / "manifest.csv"), "--modality",
            "photo", "--site", "gpu", "--precision", "fp32", "--device", device.type, "--batch-size", str(batch),
            "--no-progress", "--out", str(folder / "torchrun")]
    env = {**os.environ, "MEDPROBE_SUBJECT_SALT": "gpu-check-salt-0123456789"}
    started = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        reason = next((line for line in done.stderr.splitlines() if "medprobe: error" in line), "see torchrun's log")
        return [["torchrun embed", "1 rank", f"failed (exit {done.returncode})", reason[:100], ""]]
    frame, X, _ = read_table(folder / "torchrun" / "embeddings.parquet")
    _, single, _ = read_table(folder / "dinov2_vits14-fp32.parquet")
    return [["torchrun embed dinov2_vits14", "1 rank, fp32", f"{len(frame) / seconds:.1f} img/s (incl. start-up)",
             f"max |diff| vs single process {np.abs(X - single).max():.1e}", ""]]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--quick", action="store_true",
                        help="ViT-S only, 32 images, a small probe, LDAE tiny, 2 steps: checks the script")
    parser.add_argument("--preset", default=None, help="LDAE preset (default realistic; tiny with --quick)")
    parser.add_argument("--images", type=int, default=None, help="PNG files to embed (default 512; 32 with --quick)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device visible: nothing to measure (python benchmarks/gpu_check.py --device cpu --quick "
              "checks the script)")
        return 0
    device = torch.device(args.device)
    quick = args.quick
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device: {name}; torch {torch.__version__}" + ("; --quick: checks the script, not figures" if quick else ""))
    started = time.perf_counter()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="medprobe-gpu-check-") as tmp:
        folder = Path(tmp)
        rows += extraction_rows(device, MODELS[:1] if quick else MODELS, args.images or (32 if quick else 512),
                                8 if quick else args.batch, 0 if quick else args.workers, folder)
        rows += probe_rows(device, 400 if quick else 20000, 64 if quick else 768)
        rows += ldae_rows(args.preset or ("tiny" if quick else "realistic"), device, [1, 2], 2 if quick else 10)
        rows += torchrun_rows(device, folder, 8 if quick else args.batch)
        rows += volume_rows(device, ["voco_b"] if quick else list(MODELS_3D), 2 if quick else 16, 2 if quick else 4,
                            folder / "3d")
    print(aligned(["check", "setting", "value", "reference", "ratio"], rows))
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
