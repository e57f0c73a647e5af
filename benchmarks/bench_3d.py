"""3D models: volumes/s from NIfTI files through each model's own preprocessing (the authors' chain from its card)
against the bare forward on preloaded, preprocessed tensors, side by side in one process.

    python benchmarks/bench_3d.py                        # CPU, 4 volumes per model
    python benchmarks/bench_3d.py --device cuda --volumes 32

Per model (random init: it costs what the pretrained one does) three figures: the engine (`embed_manifest`, cold
cache: read, preprocess, forward, write), the preprocessing alone (read + chain, one process), and the bare
`encoder.encode` on tensors already in memory; the ratio engine/bare says how much of a site's time is not the
network. The volumes are synthetic CT (an ellipsoid body of soft tissue and bone in air, 192 × 192 × 96 voxels at
0.8 × 0.8 × 2.5 mm, LPS), so every model's orientation, resampling, window and crop does real work; BrainIAC, an MRI
model, reads them as MRI. `gpu_check.py` prints the same rows on a CUDA machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch

from medprobe.cli.formatting import aligned

#: model → the modality its defaults are for.
MODELS = {"ct_fm": "ct", "voco_b": "ct", "merlin": "ct", "medicalnet_resnet50": "ct", "brainiac": "mri"}
SHAPE = (192, 192, 96)
SPACING = (0.8, 0.8, 2.5)
Row = list[str]


def write_ct_volumes(folder: Path, count: int) -> Path:
    """`count` synthetic CT volumes (HU, int16) and their manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, n) for n in SHAPE), indexing="ij"))
    affine = np.diag([-SPACING[0], -SPACING[1], SPACING[2], 1.0])  # LPS: every model's orientation step works
    rows = []
    for i in range(count):
        radii = rng.uniform(0.6, 0.9, 3)
        body = ((grid / radii[:, None, None, None]) ** 2).sum(0) < 1
        bone = ((grid[:2] / 0.15) ** 2).sum(0) < 1
        volume = np.where(body, 40 + rng.normal(0, 20, SHAPE), -1000 + rng.normal(0, 10, SHAPE))
        volume = np.where(body & bone, 700 + rng.normal(0, 50, SHAPE), volume)
        nib.save(nib.Nifti1Image(volume.astype(np.int16), affine), str(folder / f"ct{i:03d}.nii.gz"))
        rows.append({"path": f"ct{i:03d}.nii.gz", "subject_id": f"P{i}", "label": i % 2})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def volume_rows(device: torch.device, models: list[str], volumes: int, batch: int, folder: Path) -> list[Row]:
    """One row per model: engine volumes/s, preprocessing volumes/s, bare volumes/s, ratio engine/bare."""
    from medprobe.embed import EmbedSettings, embed_manifest
    from medprobe.io import read_image
    from medprobe.models import load_encoder
    from medprobe.pipeline_spec import DataSpec, load_manifest
    from medprobe.preprocess import PreprocessChain

    manifest_path = write_ct_volumes(folder, volumes)
    manifest = load_manifest(manifest_path, ["label"])
    paths = [str(folder / p) for p in manifest["path"]]
    rows = []
    for name in models:
        modality = MODELS[name]
        encoder = load_encoder(name).to(device)
        chain = PreprocessChain(DataSpec(manifest=manifest_path, modality=modality), encoder.preprocessing)
        started = time.perf_counter()
        tensors = torch.cat([chain(read_image(p, modality), p) for p in paths])
        preprocess = volumes / (time.perf_counter() - started)
        tensors = tensors.to(device)
        with torch.no_grad():
            encoder.encode(tensors[:1])  # warm-up: kernels, allocator
            _sync(device)
            started = time.perf_counter()
            for start in range(0, volumes, batch):
                encoder.encode(tensors[start : start + batch])
            _sync(device)
        bare = volumes / (time.perf_counter() - started)
        settings = EmbedSettings(site="bench", salt=b"bench", label_columns=("label",), modality=modality,
                                 batch_size=batch, precision="fp32", device=device, num_workers=1, progress=False)
        started = time.perf_counter()
        embed_manifest(manifest, encoder, chain, folder / f"cache-{name}", settings, folder / f"{name}.parquet")
        engine = volumes / (time.perf_counter() - started)
        size = "×".join(map(str, tensors.shape[2:]))
        rows.append([f"3D {name} ({modality}, {size})", device.type, f"{engine:.2f} vol/s",
                     f"bare {bare:.2f} vol/s; preprocessing {preprocess:.2f} vol/s", f"{engine / bare:.2f}"])
        del encoder, tensors
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--volumes", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    args = parser.parse_args()
    device = torch.device(args.device)
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}; "
          f"torch {torch.__version__}; {torch.get_num_threads()} threads; {args.volumes} volumes {SHAPE}")
    with tempfile.TemporaryDirectory(prefix="medprobe-bench-3d-") as tmp:
        rows = volume_rows(device, args.models, args.volumes, args.batch, Path(tmp))
    print(aligned(["model", "device", "engine", "bare forward; preprocessing alone", "engine/bare"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
