"""A longitudinal brain-phantom study with known factors, for checking what a self-supervised encoder learns.

Every volume is drawn from four controlled factors, so the truth for probing and for interpolation is known:

* **subject identity** — head size, cortical folding pattern, ventricle and hippocampus size jitter;
* **age** — atrophy: the ventricles widen (+2.5 % linear size per year from 50) and the brain shrinks away from
  the skull (wider sulcal/subarachnoid CSF), so an older session has more dark CSF in known places;
* **disease** (an AD-like factor, independent of age) — the hippocampi shrink (to ~55 % linear size, and 4 %
  a year faster) and the emptied space fills with CSF (an enlarged temporal horn);
* **scanner** — intensity gain and offset, grey/white contrast, a smooth bias field and noise level.

Each subject has `sessions` scans `interval_months` apart on one scanner, so the middle session of a subject's
first and last is the real intermediate scan for interpolation. Volumes are RAS float32 NIfTI (default 32³ at
5 mm); the manifest has path, subject_id, session, months, age, disease (0/1) and scanner. The study depends
only on its arguments (byte-for-byte deterministic).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter

from medprobe.demo.synthetic import ellipsoid_radius, nifti_in_mm
from medprobe.errors import MedprobeError

AGE_RANGE = (55.0, 85.0)
VENTRICLE_GROWTH_PER_YEAR = 0.025
BRAIN_SHRINK_PER_YEAR = 0.004
HIPPOCAMPUS_AD_SCALE = 0.55
HIPPOCAMPUS_AD_LOSS_PER_YEAR = 0.04
TISSUE = {"scalp": 820.0, "skull": 160.0, "csf": 240.0, "gm": 640.0, "wm": 960.0}


@dataclass(frozen=True)
class Scanner:
    gain: float
    offset: float
    contrast: float  # white-matter / grey-matter intensity relative to the nominal ratio
    noise_sd: float
    bias_axis: tuple[float, float, float]
    bias_amplitude: float


SCANNERS = (
    Scanner(gain=1.0, offset=0.0, contrast=1.0, noise_sd=18.0, bias_axis=(0.3, 1.0, 0.2), bias_amplitude=0.10),
    Scanner(gain=1.4, offset=50.0, contrast=0.9, noise_sd=30.0, bias_axis=(0.2, 0.3, 1.0), bias_amplitude=0.18),
    Scanner(gain=0.8, offset=20.0, contrast=1.08, noise_sd=24.0, bias_axis=(1.0, 0.1, 0.4), bias_amplitude=0.14),
)


@dataclass(frozen=True)
class Subject:
    """What stays the same across a subject's sessions."""

    subject_id: str
    baseline_age: float
    disease: int
    scanner: int
    head_scale: float
    ventricle_jitter: float
    hippocampus_jitter: float
    fold_seed: int


@dataclass(frozen=True)
class PhantomStudy:
    manifest: Path
    table: pd.DataFrame
    shape: tuple[int, int, int]
    voxel_mm: float


def write_phantom_study(out_dir: Path, n_subjects: int = 80, sessions: int = 3, interval_months: int = 18,
                        shape: Sequence[int] = (32, 32, 32), voxel_mm: float = 5.0, seed: int = 0) -> PhantomStudy:
    """Write the volumes under `out_dir/volumes/` and `out_dir/manifest.csv`; return the manifest table."""
    if n_subjects < 4 or sessions < 1:
        raise MedprobeError("a phantom study needs at least 4 subjects and 1 session each")
    grid = tuple(int(s) for s in shape)
    if len(grid) != 3 or min(grid) < 8:
        raise MedprobeError(f"phantom shape must be three sizes of at least 8 voxels, got {list(shape)}")
    out = Path(out_dir)
    (out / "volumes").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0x9A47])
    rows = []
    for subject in draw_subjects(n_subjects, rng):
        for session in range(sessions):
            months = session * interval_months
            age = subject.baseline_age + months / 12.0
            session_rng = np.random.default_rng([seed, int(subject.subject_id[1:]), session])
            volume = render_session(subject, age, months / 12.0, grid, voxel_mm, session_rng)
            name = f"volumes/{subject.subject_id}_ses{session}.nii.gz"
            nib.save(_nifti(volume, voxel_mm), str(out / name))
            rows.append({"path": name, "subject_id": subject.subject_id, "session": session, "months": months,
                         "age": round(age, 2), "disease": subject.disease, "scanner": f"scanner{subject.scanner}"})
    table = pd.DataFrame(rows)
    manifest = out / "manifest.csv"
    table.to_csv(manifest, index=False)
    return PhantomStudy(manifest, table, grid, voxel_mm)


def draw_subjects(n: int, rng: np.random.Generator) -> list[Subject]:
    """Balanced disease groups, each spread evenly over the scanners; ages independent of disease."""
    disease = rng.permutation(np.arange(n) % 2)
    scanner = np.zeros(n, dtype=int)
    for value in (0, 1):
        members = np.flatnonzero(disease == value)
        scanner[rng.permutation(members)] = np.arange(len(members)) % len(SCANNERS)
    return [
        Subject(subject_id=f"P{i:03d}", baseline_age=float(rng.uniform(*AGE_RANGE)), disease=int(disease[i]),
                scanner=int(scanner[i]), head_scale=float(rng.uniform(0.94, 1.04)),
                ventricle_jitter=float(np.exp(rng.normal(0.0, 0.08))),
                hippocampus_jitter=float(np.exp(rng.normal(0.0, 0.06))), fold_seed=int(rng.integers(2**31)))
        for i in range(n)
    ]


def render_session(subject: Subject, age: float, years: float, shape: tuple[int, int, int], voxel_mm: float,
                   rng: np.random.Generator) -> np.ndarray:
    """One scan (float32, RAS array order, scanner units): anatomy at `age`, `years` after baseline."""
    scanner = SCANNERS[subject.scanner]
    x, y, z = _grid(shape, voxel_mm, rng.normal(0.0, 1.0, 3))
    tissue = _anatomy(subject, age, years, (x, y, z), shape, voxel_mm, scanner.contrast)
    tissue = gaussian_filter(tissue, sigma=0.5)
    axis = np.asarray(scanner.bias_axis) / np.linalg.norm(scanner.bias_axis) + rng.normal(0.0, 0.1, 3)
    bias = np.exp(scanner.bias_amplitude * ((axis[0] * x + axis[1] * y + axis[2] * z) / 80.0
                                            - 0.5 * (x**2 + y**2 + z**2) / 80.0**2))
    signal = tissue * bias * scanner.gain
    noisy = np.hypot(signal + rng.normal(0.0, scanner.noise_sd, shape), rng.normal(0.0, scanner.noise_sd, shape))
    return (noisy + scanner.offset).astype(np.float32)


def _anatomy(subject: Subject, age: float, years: float, xyz: tuple[np.ndarray, ...], shape: tuple[int, int, int],
             voxel_mm: float, contrast: float) -> np.ndarray:
    x, y, z = xyz
    s = subject.head_scale
    r_head = ellipsoid_radius(x, y, z, (0.0, 0.0, -4.0), (70 * s, 80 * s, 72 * s))
    r_brain = ellipsoid_radius(x, y, z, (0.0, 0.0, 0.0), (58 * s, 68 * s, 58 * s))
    folds = gaussian_filter(np.random.default_rng(subject.fold_seed).standard_normal(shape), sigma=8.0 / voxel_mm)
    folds /= folds.std()
    out = np.zeros(shape)
    out[r_head < 1.0] = TISSUE["scalp"]
    out[r_head < 0.92] = TISSUE["skull"]
    out[r_brain < 1.0] = TISSUE["csf"]
    shrink = BRAIN_SHRINK_PER_YEAR * (age - 50.0)
    cortex = r_brain < 0.97 - shrink
    sulci = (r_brain > 0.78 - shrink) & (folds > 1.3 - 12 * shrink)
    out[cortex & ~sulci] = TISSUE["gm"]
    out[r_brain < 0.78 + 0.05 * folds - shrink] = TISSUE["wm"] * contrast
    v = (1.0 + VENTRICLE_GROWTH_PER_YEAR * (age - 50.0)) * subject.ventricle_jitter
    ventricles = ellipsoid_radius(x, y, z, (0.0, -4.0, -4.0), (3.0 * v, 12.0 * v, 7.0 * v)) < 1.0
    for side in (-1.0, 1.0):
        ventricles |= ellipsoid_radius(x, y, z, (side * 9.0 * v**0.5, 2.0, 8.0), (7.0 * v, 20.0 * v, 9.0 * v)) < 1.0
        centre = (side * 26.0, -8.0, -16.0)
        out[ellipsoid_radius(x, y, z, centre, (9.0, 20.0, 9.0)) < 1.0] = TISSUE["csf"]  # the temporal horn
        h = _hippocampus_scale(subject, years)
        out[ellipsoid_radius(x, y, z, centre, (9.0 * h, 20.0 * h, 9.0 * h)) < 1.0] = TISSUE["gm"]
    out[ventricles] = TISSUE["csf"]
    return out


def _hippocampus_scale(subject: Subject, years: float) -> float:
    if subject.disease:
        return (HIPPOCAMPUS_AD_SCALE - HIPPOCAMPUS_AD_LOSS_PER_YEAR * years) * subject.hippocampus_jitter
    return (1.0 - 0.005 * years) * subject.hippocampus_jitter * 0.98


def _grid(shape: tuple[int, int, int], voxel_mm: float, shift_mm: np.ndarray) -> tuple[np.ndarray, ...]:
    axes = [voxel_mm * (np.arange(n) - (n - 1) / 2.0) - shift_mm[d] for d, n in enumerate(shape)]
    return tuple(np.meshgrid(*axes, indexing="ij", sparse=True))


def _nifti(volume: np.ndarray, voxel_mm: float) -> nib.Nifti1Image:
    affine = np.diag([voxel_mm, voxel_mm, voxel_mm, 1.0])
    affine[:3, 3] = -voxel_mm * (np.asarray(volume.shape) - 1) / 2.0
    return nifti_in_mm(volume, affine, b"medprobe phantom study")
