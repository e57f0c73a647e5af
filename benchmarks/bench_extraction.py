"""Extraction throughput: the engine from files against the bare model forward, bf16 against fp32, warm cache.

    python benchmarks/bench_extraction.py [--images 64] [--batch 16] [--workers 1] [--rounds 2]

Writes N 256×256 PNGs, builds DINOv2 ViT-S/14 at 224 (random init: it costs exactly what the pretrained one does)
and, alternating within each round, measures on the CPU
- bare: `encoder.encode` on preloaded, preprocessed tensors, same batch size and autocast as the engine;
- engine: `embed_manifest` end to end from the files with a cold cache (hash, read, preprocess, embed, shard
  writes, table), at fp32 and at bf16;
- warm: the same `embed_manifest` call again on the filled cache.
Prints median rates and the ratios engine/bare (goal >= 0.85), bf16/fp32 end to end (goal >= 2 with cosine
>= 0.999) and warm/cold seconds (goal <= 5 %). The bf16 cosine is given raw and centred (minus the fp32 mean
embedding): a random-init ViT maps all images close together, so the centred figure is the stricter one.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from medprobe.embed import EmbedSettings, embed_manifest
from medprobe.embed.device import autocast
from medprobe.io import read_image
from medprobe.models import load_encoder
from medprobe.pipeline_spec import DataSpec, load_manifest
from medprobe.preprocess import PreprocessChain


def write_pngs(folder: Path, count: int) -> Path:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:256, 0:256]
    rows = []
    for i in range(count):
        disc = ((yy - rng.integers(64, 192)) ** 2 + (xx - rng.integers(64, 192)) ** 2) < rng.integers(400, 3000)
        image = np.clip(60 + 120 * disc + rng.normal(0, 15, (256, 256)), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(folder / f"im{i:04d}.png")
        rows.append({"path": f"im{i:04d}.png", "subject_id": f"P{i}", "label": i % 2})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def bare(encoder, views: torch.Tensor, batch: int, precision: str) -> tuple[float, np.ndarray]:
    device = torch.device("cpu")
    started = time.perf_counter()
    with autocast(precision, device):
        out = [encoder.encode(views[i : i + batch]).float() for i in range(0, len(views), batch)]
    return time.perf_counter() - started, torch.cat(out).numpy()


def engine(encoder, chain, manifest, cache: Path, args, precision: str):
    settings = EmbedSettings(site="bench", salt=b"bench", label_columns=("label",), modality="photo",
                             batch_size=args.batch, precision=precision, num_workers=args.workers, progress=False)
    started = time.perf_counter()
    result = embed_manifest(manifest, encoder, chain, cache, settings, cache.parent / f"{cache.name}.parquet")
    return time.perf_counter() - started, result


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="medprobe-bench-extract-"))
    manifest_path = write_pngs(root, args.images)
    manifest = load_manifest(manifest_path, ["label"])
    encoder = load_encoder("dinov2_vits14", input_size=224)
    chain = PreprocessChain(DataSpec(manifest=manifest_path, modality="photo"), encoder.preprocessing)
    views = torch.cat([chain(read_image(p, "photo")) for p in manifest["path"]])
    bare(encoder, views[: args.batch], args.batch, "fp32")  # warm-up: allocator, kernels
    times: dict[str, list[float]] = {k: [] for k in ("bare_fp32", "engine_fp32", "bare_bf16", "engine_bf16", "warm")}
    vectors: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        for precision in ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32"):
            seconds, vectors[f"bare_{precision}"] = bare(encoder, views, args.batch, precision)
            times[f"bare_{precision}"].append(seconds)
            seconds, result = engine(encoder, chain, manifest, root / f"cache-{precision}-{r}", args, precision)
            times[f"engine_{precision}"].append(seconds)
            vectors[f"engine_{precision}"] = result.embeddings()
            if precision == "fp32":
                seconds, warm = engine(encoder, chain, manifest, root / f"cache-{precision}-{r}", args, precision)
                assert warm.computed == 0
                times["warm"].append(seconds)
    median = {k: statistics.median(v) for k, v in times.items()}
    n = args.images
    print(f"{n} PNGs 256x256 -> DINOv2 ViT-S/14 @224, batch {args.batch}, workers {args.workers}, "
          f"{torch.get_num_threads()} torch threads, {args.rounds} rounds (median)")
    for key in ("bare_fp32", "engine_fp32", "bare_bf16", "engine_bf16"):
        print(f"  {key:12s} {n / median[key]:7.2f} images/s  ({median[key]:.2f} s)")
    print(f"  warm re-run  {median['warm']:.3f} s")
    print(f"(a) engine/bare fp32: {median['bare_fp32'] / median['engine_fp32']:.3f}x   "
          f"bf16: {median['bare_bf16'] / median['engine_bf16']:.3f}x   (goal >= 0.85)")
    reference = vectors["engine_fp32"]
    centre = reference.mean(0)
    raw = cosine(vectors["engine_bf16"], reference)
    centred = cosine(vectors["engine_bf16"] - centre, reference - centre)
    print(f"(b) bf16/fp32 end to end: {median['engine_fp32'] / median['engine_bf16']:.2f}x, bare forward: "
          f"{median['bare_fp32'] / median['bare_bf16']:.2f}x; cosine raw {raw:.5f}, centred {centred:.5f}"
          "   (goal >= 2x, >= 0.999)")
    print(f"(c) warm/cold: {100 * median['warm'] / median['engine_fp32']:.1f} %   (goal <= 5 %)")


if __name__ == "__main__":
    main()
