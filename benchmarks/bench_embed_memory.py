"""Peak memory of the embedding engine as the manifest grows tenfold: it should stay flat apart from the vectors.

    python benchmarks/bench_embed_memory.py [--sizes 50 500] [--model handcrafted]

Writes the largest number of small PNGs (64×64) once, then for each size runs `embed_manifest` (cold cache, one
DataLoader worker) in a fresh subprocess and reports its RSS high-water mark (`resource.getrusage`, main process
and the worker), the high-water mark right before embedding (imports, model) and the size of the embeddings.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image


def child(manifest_path: Path, count: int, model: str, out: Path) -> None:
    from medprobe.embed import EmbedSettings, embed_manifest
    from medprobe.models import load_encoder
    from medprobe.pipeline_spec import DataSpec, load_manifest
    from medprobe.preprocess import PreprocessChain

    manifest = load_manifest(manifest_path, ["label"]).iloc[:count].reset_index(drop=True)
    encoder = load_encoder(model)
    chain = PreprocessChain(DataSpec(manifest=manifest_path, modality="photo"), encoder.preprocessing)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    settings = EmbedSettings(site="bench", salt=b"bench", label_columns=("label",), modality="photo",
                             precision="fp32", num_workers=1, progress=False)
    result = embed_manifest(manifest, encoder, chain, out / "cache", settings, out / "table.parquet")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    worker = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"n": len(result), "dim": encoder.embed_dim, "before_kib": before, "peak_kib": peak,
                      "worker_kib": worker}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 500])
    parser.add_argument("--model", default="handcrafted")
    parser.add_argument("--child", nargs=3, metavar=("MANIFEST", "N", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(Path(args.child[0]), int(args.child[1]), args.model, Path(args.child[2]))
        return
    root = Path(tempfile.mkdtemp(prefix="medprobe-bench-memory-"))
    rng = np.random.default_rng(0)
    rows = []
    for i in range(max(args.sizes)):
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(root / f"im{i:05d}.png")
        rows.append({"path": f"im{i:05d}.png", "subject_id": f"P{i}", "label": i % 2})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    print(f"model {args.model}, 64x64 PNGs, fresh subprocess per size, cold cache")
    print("      n   before MiB   peak MiB   peak-before MiB   worker MiB   embeddings MiB")
    for size in args.sizes:
        done = subprocess.run([sys.executable, __file__, "--model", args.model, "--child", str(root / "manifest.csv"),
                               str(size), str(root / f"out-{size}")], capture_output=True, text=True, check=True)
        m = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{m['n']:7d}   {m['before_kib'] / 1024:10.1f}   {m['peak_kib'] / 1024:8.1f}   "
              f"{(m['peak_kib'] - m['before_kib']) / 1024:15.1f}   {m['worker_kib'] / 1024:10.1f}   "
              f"{m['n'] * m['dim'] * 4 / 2**20:14.3f}")


if __name__ == "__main__":
    main()
