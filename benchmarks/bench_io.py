"""Read-and-preprocess throughput: medprobe's job path against a plain MONAI pipeline on the same files.

    python benchmarks/bench_io.py [--nifti 6] [--dicom 3] [--rounds 3] [--size 256] [--slices 128]

Writes 3D NIfTI volumes (int16, LPS storage, 1.0 × 1.0 × 1.2 mm) and DICOM series (int16 slices, LPS patient
coordinates, RescaleSlope/Intercept set, files named in random order) to a temporary folder, then brings every
one to RAS at 1.5 mm isotropic voxels with

- medprobe: `medprobe.io.read_image(path)` + `PreprocessChain` built from a DataSpec (orientation RAS, spacing
  1.5 mm, intensity none; and again with intensity percentile 0.5–99.5) and a "native" InputSpec — what jobs run;
- MONAI: `LoadImage(image_only=True, ensure_channel_first=True)` + `Orientation("RAS")` + `Spacing(pixdim=1.5)`
  (+ `ScaleIntensityRangePercentiles(0.5, 99.5, 0, 1, clip=True)` for the percentile rows). MONAI picks its reader
  itself for NIfTI (NibabelReader); for DICOM folders it is given `reader="PydicomReader"` when the `itk` package
  is missing (MONAI's default DICOM reader is ITKReader).

The pipelines alternate within each round (who goes first alternates too); the figure is the median over rounds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

import nibabel as nib
import numpy as np
import torch

from medprobe.io import read_image
from medprobe.pipeline_spec import DataSpec
from medprobe.preprocess import InputSpec, PreprocessChain

PIXDIM = 1.5
NATIVE = InputSpec(spatial_dims=None, size=None, channels=None, mean=None, std=None)


def phantom(rng: np.random.Generator, shape: tuple[int, int, int]) -> np.ndarray:
    """A head-like int16 volume: an ellipsoid with a brighter core, a gradient and noise (compresses like MRI)."""
    grids = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape], indexing="ij", sparse=True)
    radius = sum((g / r) ** 2 for g, r in zip(grids, (0.8, 0.9, 0.85), strict=True))
    volume = np.where(radius < 1, 600.0, 0.0) + np.where(radius < 0.4, 300.0, 0.0) + 100 * grids[2]
    volume = volume + rng.normal(0, 20, shape).astype(np.float32)
    return np.clip(volume, -1000, 3000).astype(np.int16)


def write_nifti(folder: Path, count: int, side: int, rng: np.random.Generator) -> list[Path]:
    paths = []
    for i in range(count):
        affine = np.diag([-1.0, -1.0, 1.2, 1.0])  # LPS storage: x runs to the left, y to the back
        affine[:3, 3] = [side / 2, side / 2, -side * 0.6]
        image = nib.Nifti1Image(phantom(rng, (side, side, side)), affine)
        image.set_qform(affine, code=1)
        image.set_sform(affine, code=1)
        path = folder / f"vol{i}.nii.gz"
        nib.save(image, str(path))
        paths.append(path)
    return paths


def write_dicom(folder: Path, count: int, side: int, slices: int, rng: np.random.Generator) -> list[Path]:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    paths = []
    for s in range(count):
        series = folder / f"series{s}"
        series.mkdir()
        volume = phantom(rng, (slices, side, side))  # (slice, row, column)
        study, uid, frame = generate_uid(), generate_uid(), generate_uid()
        names = rng.permutation(slices)
        for k in range(slices):
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = CTImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = Dataset()
            ds.file_meta = meta
            ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, uid, frame
            ds.Modality, ds.InstanceNumber, ds.SeriesNumber = "CT", k + 1, s + 1
            # LPS patient coordinates: rows run along +x (to the left), columns along +y (to the back).
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.ImagePositionPatient = [-side / 2, -side / 2, -slices * 0.6 + 1.2 * k]
            ds.PixelSpacing, ds.SliceThickness = [1.0, 1.0], 1.2
            ds.Rows = ds.Columns = side
            ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
            ds.RescaleSlope, ds.RescaleIntercept = 0.5, -200
            ds.PixelData = np.ascontiguousarray(volume[k]).tobytes()
            ds.save_as(series / f"{names[k]:08x}.dcm", enforce_file_format=True)
        paths.append(series)
    return paths


def medprobe_pipeline(intensity: dict) -> Callable[[Path], torch.Tensor]:
    data = DataSpec(manifest=Path("unused.csv"), modality="mri", preprocessing={
        "orientation": "RAS", "spacing": [PIXDIM] * 3, "intensity": intensity})
    chain = PreprocessChain(data, NATIVE)
    return lambda path: chain(read_image(path), source=str(path))


def monai_pipeline(reader: str | None, percentile: bool) -> Callable[[Path], torch.Tensor]:
    from monai.transforms import Compose, LoadImage, Orientation, ScaleIntensityRangePercentiles, Spacing

    steps = [LoadImage(reader=reader, image_only=True, ensure_channel_first=True),
             Orientation(axcodes="RAS", labels=(("L", "R"), ("P", "A"), ("I", "S"))), Spacing(pixdim=PIXDIM)]
    if percentile:
        steps.append(ScaleIntensityRangePercentiles(lower=0.5, upper=99.5, b_min=0.0, b_max=1.0, clip=True))
    return Compose(steps)


def sanity(paths: list[Path], ours: Callable, theirs: Callable) -> str:
    a = ours(paths[0])[0].numpy()
    b = theirs(paths[0]).as_tensor().numpy()
    if a.shape != b.shape:
        return f"shapes differ: medprobe {a.shape}, MONAI {b.shape}"
    diff = np.abs(a - b).max() / max(np.abs(b).max(), 1e-6)
    return f"same shape {a.shape[1:]}; max |medprobe − MONAI| / max |MONAI| = {diff:.1e}"


def measure(paths: list[Path], pipelines: dict[str, Callable], rounds: int) -> dict[str, float]:
    """Median volumes/s of each pipeline over `rounds`; pipelines alternate, their order reversed each round."""
    names = list(pipelines)
    for name in names:  # warm-up: imports, caches, first-call set-up
        pipelines[name](paths[0])
    rates: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            started = time.perf_counter()
            for path in paths:
                pipelines[name](path)
            rates[name].append(len(paths) / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in rates.items()}


def report(title: str, rates: dict[str, float]) -> None:
    print(f"\n{title}")
    print(f"  {'pipeline':<34}{'volumes/s':>10}{'medprobe/MONAI':>16}")
    pairs = {"medprobe": "MONAI", "medprobe + percentile": "MONAI + percentile"}
    for name, rate in rates.items():
        ratio = f"{rate / rates[pairs[name]]:.2f}×" if name in pairs else ""
        print(f"  {name:<34}{rate:>10.2f}{ratio:>16}")


def compare_pipelines(title: str, paths: list[Path], reader: str | None, rounds: int) -> None:
    """medprobe against MONAI (`reader`, None: its default), with and without percentile scaling, on `paths`."""
    pipelines = {"medprobe": medprobe_pipeline({"mode": "none"}),
                 "MONAI": monai_pipeline(reader, False),
                 "medprobe + percentile": medprobe_pipeline({"mode": "percentile"}),
                 "MONAI + percentile": monai_pipeline(reader, True)}
    print("  check: " + sanity(paths, pipelines["medprobe"], pipelines["MONAI"]))
    report(title, measure(paths, pipelines, rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nifti", type=int, default=6, help="NIfTI volumes (0 to skip)")
    parser.add_argument("--dicom", type=int, default=3, help="DICOM series (0 to skip)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=256, help="in-plane voxels (and NIfTI slices)")
    parser.add_argument("--slices", type=int, default=128, help="slices per DICOM series")
    parser.add_argument("--out", type=Path, default=None, help="keep the data here instead of a temp folder")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")  # MONAI's deprecation and optional-decoder notices
    out = args.out or Path(tempfile.mkdtemp(prefix="medprobe-bench-io-"))
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    rng = np.random.default_rng(0)
    print(f"cores: {os.cpu_count()}, torch threads: {torch.get_num_threads()}, rounds: {args.rounds} (median)")

    try:
        if args.nifti:
            started = time.perf_counter()
            paths = write_nifti(out, args.nifti, args.size, rng)
            print(f"NIfTI: {args.nifti} × {args.size}³ int16 .nii.gz, LPS, 1.0×1.0×1.2 mm "
                  f"(written in {time.perf_counter() - started:.0f} s) → RAS, {PIXDIM} mm")
            compare_pipelines("NIfTI (MONAI reader: NibabelReader)", paths, None, args.rounds)
        if args.dicom:
            started = time.perf_counter()
            paths = write_dicom(out, args.dicom, args.size, args.slices, rng)
            reader = None if find_spec("itk") else "PydicomReader"
            print(f"\nDICOM: {args.dicom} series × {args.slices} slices of {args.size}² int16, LPS, slope 0.5, "
                  f"intercept -200, shuffled names (written in {time.perf_counter() - started:.0f} s) → RAS, "
                  f"{PIXDIM} mm")
            compare_pipelines(f"DICOM series folders (MONAI reader: {reader or 'default (ITKReader)'})", paths,
                              reader, args.rounds)
    finally:
        if args.out is None:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
