"""Synthetic two-site dataset for ``medprobe demo``, written as real NIfTI and PNG files with manifests.

The demo must exercise the same code paths as a real evaluation, so nothing here is in-memory only: volumes
are gzipped NIfTI with proper qform/sform, fundus photographs are 8-bit PNG, and each site gets its own
manifest. The data are built so that the things ``medprobe`` is meant to reveal are present and known:

* a continuous target (``age``) with a clearly visible correlate (ventricles grow with age);
* a ``sex`` column that nothing in the images depends on, for the subgroup analysis;
* a binary target (``lesion``) a 2D model can see in the central axial slices;
* repeat sessions of some subjects, so a split that is not per subject leaks;
* a site shift: the second site differs in intensity scale, offset, noise and bias field, stores its
  volumes LPS instead of RAS on disk, and has a different fundus colour cast and JPEG quality.

The first site in ``sites`` is the reference acquisition, the second the shifted one; further sites get a
style drawn from their own random stream. The content of a site (subjects, labels, anatomy, noise) depends
only on ``(seed, site name)``, so adding a site does not change the others. Output is byte-for-byte
deterministic. Existing files are overwritten; unrelated files already in ``out_dir`` are left alone.
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
from nibabel.orientations import apply_orientation, axcodes2ornt, inv_ornt_aff, ornt_transform
from PIL import Image
from scipy.ndimage import gaussian_filter

from medprobe.errors import MedprobeError

MRI_SHAPE: tuple[int, int, int] = (64, 64, 48)
"""Array shape in RAS order (left→right, posterior→anterior, inferior→superior)."""
MRI_VOXEL_MM: tuple[float, float, float] = (3.0, 3.0, 3.5)
FUNDUS_SIZE = 224
MIN_SUBJECTS = 8
"""Fewer subjects cannot put both classes of both labels into both splits."""

TEST_FRACTION = 0.3
REPEAT_FRACTION = 0.3
AGE_RANGE = (20.0, 90.0)
CENTRAL_SLAB_HALF_WIDTH = 2
"""The lesion centre lies within this many slices of the middle slice, so it is seen in the central three."""

# Nominal T1-weighted intensities of the reference site (arbitrary scanner units).
_T1 = {"background": 0.0, "scalp": 820.0, "skull": 160.0, "csf": 240.0, "gm": 640.0, "wm": 960.0}
_LESION_T1 = 1420.0


@dataclass(frozen=True)
class DemoSite:
    """One site's folder and manifests; paths are absolute."""

    name: str
    root: Path
    mri_manifest: Path
    fundus_manifest: Path


@dataclass(frozen=True)
class DemoDataset:
    """What :func:`write_demo_dataset` wrote; ``root`` is ``out_dir/data``."""

    root: Path
    sites: list[DemoSite]


@dataclass(frozen=True)
class SiteStyle:
    """How a site's scanner and camera distort the same anatomy; this is the site effect."""

    axcodes: str  # orientation of the stored NIfTI array
    scale: float  # multiplicative intensity scale
    offset: float  # additive intensity offset
    noise_sd: float  # thermal noise SD in reference intensity units
    bias_amplitude: float  # strength of the smooth multiplicative bias field
    bias_axis: tuple[float, float, float]  # main direction of the bias gradient (RAS)
    fundus_cast: tuple[float, float, float]  # RGB gains
    fundus_brightness: float
    fundus_noise_sd: float  # in 8-bit units
    jpeg_quality: int  # the photo went through a JPEG encoder at this quality before PNG export


REFERENCE_STYLE = SiteStyle(
    axcodes="RAS",
    scale=1.0,
    offset=0.0,
    noise_sd=14.0,
    bias_amplitude=0.10,
    bias_axis=(0.3, 1.0, 0.2),
    fundus_cast=(1.0, 1.0, 1.0),
    fundus_brightness=1.0,
    fundus_noise_sd=2.0,
    jpeg_quality=95,
)
SHIFTED_STYLE = SiteStyle(
    axcodes="LPS",
    scale=1.35,
    offset=60.0,
    noise_sd=32.0,
    bias_amplitude=0.16,
    bias_axis=(0.2, 0.3, 1.0),
    fundus_cast=(0.86, 1.04, 1.25),
    fundus_brightness=0.82,
    fundus_noise_sd=5.0,
    jpeg_quality=55,
)


@dataclass(frozen=True)
class MriAnatomy:
    """Everything that defines one session's head, independent of the site that scans it.

    Coordinates are world millimetres (RAS, origin at the centre of the field of view).
    """

    age: float
    head_scale: float = 1.0
    ventricle_jitter: float = 1.0
    lesion_center_mm: tuple[float, float, float] | None = None
    lesion_radius_vox: float = 5.0
    shift_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    texture_seed: int = 0

    def ventricle_scale(self) -> float:
        """Linear size factor of the ventricles: the learnable age signal (×1.84 at 90 vs 20 years)."""
        return (1.0 + 0.012 * (self.age - 20.0)) * self.ventricle_jitter


# --------------------------------------------------------------------------------------------- public API


def write_demo_dataset(
    out_dir: Path, sites: Sequence[str] = ("site-a", "site-b"), n_subjects: int = 48, seed: int = 0
) -> DemoDataset:
    """Write the demo dataset under ``out_dir/data/<site>/{mri,fundus}`` and return where it went.

    ``n_subjects`` is per site; about 30 % of MRI subjects get a second session. Each subject is in exactly
    one split, the same in both modalities. Raises :class:`MedprobeError` for arguments a user can get wrong.
    """
    names = _validate(sites, n_subjects)
    data_root = Path(out_dir).expanduser().resolve() / "data"
    written = []
    for index, name in enumerate(names):
        rng = site_rng(seed, name)
        style = _style_for(index, rng)
        written.append(_write_site(data_root / name, name, style, n_subjects, rng))
    return DemoDataset(root=data_root, sites=written)


def site_rng(seed: int, site: str) -> np.random.Generator:
    """The site's own random stream; stable across Python processes (no salted ``hash``)."""
    return np.random.default_rng([seed, zlib.crc32(site.encode("utf-8"))])


def render_mri(anatomy: MriAnatomy, style: SiteStyle, rng: np.random.Generator) -> np.ndarray:
    """Render one session as int16 in RAS array order, with the site's intensities, bias field and noise."""
    x, y, z = _world_grid(anatomy.shift_mm)
    tissue = _tissue_intensity(anatomy, x, y, z)
    tissue = gaussian_filter(tissue, sigma=0.6)  # partial volume at tissue borders
    texture = gaussian_filter(rng.standard_normal(MRI_SHAPE), sigma=1.2)
    tissue *= 1.0 + 0.35 * texture  # smoothed sd ≈ 0.1 → a few percent of tissue intensity
    tissue *= _bias_field(style, rng, x, y, z)
    signal = tissue * style.scale
    noise_sd = style.noise_sd * style.scale
    real = signal + rng.normal(0.0, noise_sd, MRI_SHAPE)
    imag = rng.normal(0.0, noise_sd, MRI_SHAPE)
    magnitude = np.hypot(real, imag) + style.offset  # Rician background, like a magnitude image
    return np.clip(np.rint(magnitude), 0, np.iinfo(np.int16).max).astype(np.int16)


def ventricle_mask(anatomy: MriAnatomy) -> np.ndarray:
    """Boolean RAS-ordered mask of the lateral and third ventricles; its volume is the age signal."""
    x, y, z = _world_grid(anatomy.shift_mm)
    v = anatomy.ventricle_scale()
    mask = ellipsoid_radius(x, y, z, (0.0, -4.0, -6.0), (2.5 * v, 12.0 * v, 7.0 * v)) < 1.0
    for side in (-1.0, 1.0):
        centre = (side * 8.0 * v**0.5, 2.0, 8.0)
        mask |= ellipsoid_radius(x, y, z, centre, (7.0 * v, 22.0 * v, 9.0 * v)) < 1.0
    return mask


def lesion_mask(anatomy: MriAnatomy) -> np.ndarray:
    """Boolean RAS-ordered mask of the lesion (all False without one): the ground truth of ``lesion``.

    The lesion abuts but never fills the ventricles, so it does not erase the age signal.
    """
    if anatomy.lesion_center_mm is None:
        return np.zeros(MRI_SHAPE, dtype=bool)
    x, y, z = _world_grid(anatomy.shift_mm)
    radius_mm = anatomy.lesion_radius_vox * MRI_VOXEL_MM[0]
    sphere = ellipsoid_radius(x, y, z, anatomy.lesion_center_mm, (radius_mm,) * 3) < 1.0
    return sphere & ~ventricle_mask(anatomy)


def mri_image(volume_ras: np.ndarray, axcodes: str) -> nib.Nifti1Image:
    """Store a RAS-ordered volume with array axes ``axcodes`` and an affine that keeps world coordinates.

    Whatever ``axcodes`` is, ``nib.as_closest_canonical`` of the result gives back ``volume_ras`` and the
    RAS affine: the same voxel is the same point of the patient.
    """
    ras_affine = _ras_affine()
    transform = ornt_transform(axcodes2ornt("RAS"), axcodes2ornt(tuple(axcodes)))
    data = apply_orientation(volume_ras, transform)
    affine = ras_affine @ inv_ornt_aff(transform, volume_ras.shape)
    return nifti_in_mm(np.ascontiguousarray(data), affine, b"medprobe synthetic demo")


def nifti_in_mm(data: np.ndarray, affine: np.ndarray, description: bytes) -> nib.Nifti1Image:
    """A NIfTI image whose qform and sform both hold `affine` (scanner coordinates, millimetres)."""
    image = nib.Nifti1Image(data, affine)
    image.set_qform(affine, code=1)
    image.set_sform(affine, code=1)
    image.header.set_xyzt_units("mm", "sec")
    image.header["descrip"] = description
    return image


def render_fundus(lesion: bool, style: SiteStyle, rng: np.random.Generator) -> np.ndarray:
    """Render one colour fundus photograph, (224, 224, 3) uint8, with hard exudates when ``lesion``."""
    n = FUNDUS_SIZE
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    centre = (n - 1) / 2.0
    radius = 0.46 * n
    rr = np.hypot(xx - centre, yy - centre) / radius
    retina = np.clip((1.0 - rr) * 40.0, 0.0, 1.0)  # soft-edged camera aperture

    side = rng.choice([-1.0, 1.0])  # left or right eye: the optic disc is nasal
    disc = (centre + side * 0.42 * radius + rng.normal(0, 3), centre + rng.normal(0, 4))
    macula = (centre - side * 0.05 * radius, centre + rng.normal(0, 3))

    base = np.array([0.80, 0.33, 0.13]) * rng.uniform(0.9, 1.1)
    shade = 1.0 - 0.45 * rr**2  # vignetting towards the periphery
    mottling = 1.0 + 0.05 * gaussian_filter(rng.standard_normal((n, n)), 3.0) / 0.1
    d_mac = np.hypot(xx - macula[0], yy - macula[1])
    macula_dark = 1.0 - 0.35 * np.exp(-((d_mac / 18.0) ** 2))
    image = base[None, None, :] * (shade * mottling * macula_dark)[..., None]

    vessels = _vessel_map(disc, side, rng)
    image *= 1.0 - 0.55 * vessels[..., None] * np.array([0.45, 1.0, 1.0])  # vessels: darker, redder

    d_disc = np.hypot(xx - disc[0], yy - disc[1])
    disc_w = 1.0 / (1.0 + np.exp((d_disc - 13.0) / 1.5))
    image = image * (1 - disc_w[..., None]) + disc_w[..., None] * np.array([0.98, 0.85, 0.55])

    if lesion:
        spots = _exudate_map(macula, disc, rng)
        image = image * (1 - spots[..., None]) + spots[..., None] * np.array([1.0, 0.93, 0.45])

    image *= retina[..., None]
    image = image * np.array(style.fundus_cast) * style.fundus_brightness * 255.0
    image += rng.normal(0.0, style.fundus_noise_sd, image.shape) * retina[..., None]
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return _jpeg_roundtrip(image, style.jpeg_quality)


# --------------------------------------------------------------------------------------------- one site


@dataclass(frozen=True)
class _Subject:
    number: int
    subject_id: str
    split: str
    lesion: int
    fundus_lesion: int
    ages: tuple[float, ...]
    seed: int  # root of this subject's random streams, drawn from the site stream

    @property
    def sex(self) -> str:
        """"F" or "M", independent of the labels and the images: a subgroup on which no model should differ. Drawn
        from a stream of its own so the rest of the dataset is the same with or without it."""
        return "F" if np.random.default_rng([self.seed, 0x5E8]).random() < 0.5 else "M"


def _write_site(
    root: Path, name: str, style: SiteStyle, n_subjects: int, rng: np.random.Generator
) -> DemoSite:
    subjects = _draw_subjects(name, n_subjects, rng)
    mri_dir, fundus_dir = root / "mri", root / "fundus"
    mri_dir.mkdir(parents=True, exist_ok=True)
    fundus_dir.mkdir(parents=True, exist_ok=True)

    mri_rows, fundus_rows = [], []
    for subject in subjects:
        for session, age in enumerate(subject.ages, start=1):
            session_rng = np.random.default_rng([subject.seed, session])
            anatomy = _session_anatomy(subject, age, session_rng)
            volume = render_mri(anatomy, style, session_rng)
            rel = f"sub-{subject.number:04d}_ses-{session}.nii.gz"
            nib.save(mri_image(volume, style.axcodes), mri_dir / rel)
            mri_rows.append(
                {
                    "path": rel,
                    "subject_id": subject.subject_id,
                    "split": subject.split,
                    "lesion": subject.lesion,
                    "age": round(age, 1),
                    "sex": subject.sex,
                }
            )
        rel = f"sub-{subject.number:04d}.png"
        pixels = render_fundus(bool(subject.fundus_lesion), style, np.random.default_rng([subject.seed, 0]))
        Image.fromarray(pixels, mode="RGB").save(fundus_dir / rel)
        fundus_rows.append(
            {
                "path": rel,
                "subject_id": subject.subject_id,
                "split": subject.split,
                "lesion": subject.fundus_lesion,
                "sex": subject.sex,
            }
        )

    mri_manifest, fundus_manifest = mri_dir / "manifest.csv", fundus_dir / "manifest.csv"
    pd.DataFrame(mri_rows).to_csv(mri_manifest, index=False)
    pd.DataFrame(fundus_rows).to_csv(fundus_manifest, index=False)
    return DemoSite(name=name, root=root, mri_manifest=mri_manifest, fundus_manifest=fundus_manifest)


def _draw_subjects(site: str, n: int, rng: np.random.Generator) -> list[_Subject]:
    """Site-local IDs, balanced labels, ages, repeat sessions and a split that is per subject.

    MRI and fundus lesions are independent, balanced labels; the split is stratified on the pair so that
    both classes of both labels reach both splits.
    """
    numbers = np.sort(rng.choice(np.arange(1, max(1000, 4 * n)), size=n, replace=False))
    prefix = _id_prefix(site)
    lesion = rng.permutation(np.arange(n) < n // 2).astype(int)
    fundus = np.zeros(n, dtype=int)
    for value in (0, 1):
        members = np.flatnonzero(lesion == value)
        fundus[rng.permutation(members)[: len(members) // 2]] = 1

    split = np.full(n, "train", dtype=object)
    for stratum in sorted(set(zip(lesion.tolist(), fundus.tolist(), strict=True))):
        members = np.flatnonzero((lesion == stratum[0]) & (fundus == stratum[1]))
        n_test = min(len(members) - 1, max(1, round(TEST_FRACTION * len(members))))
        split[rng.permutation(members)[:n_test]] = "test"

    first_age = rng.uniform(AGE_RANGE[0], AGE_RANGE[1] - 3.0, size=n)
    repeat = np.zeros(n, dtype=bool)
    repeat[rng.permutation(n)[: round(REPEAT_FRACTION * n)]] = True
    gap = rng.uniform(1.5, 3.0, size=n)
    seeds = rng.integers(2**63, size=n)
    return [
        _Subject(
            number=int(numbers[i]),
            subject_id=f"{prefix}-{numbers[i]:04d}",
            split=str(split[i]),
            lesion=int(lesion[i]),
            fundus_lesion=int(fundus[i]),
            ages=(float(first_age[i]), float(first_age[i] + gap[i])) if repeat[i] else (float(first_age[i]),),
            seed=int(seeds[i]),
        )
        for i in range(n)
    ]


def _session_anatomy(subject: _Subject, age: float, session_rng: np.random.Generator) -> MriAnatomy:
    """Head shape and lesion are the subject's; sessions differ only in age and head position."""
    subject_rng = np.random.default_rng(subject.seed)
    side = subject_rng.choice([-1.0, 1.0])  # lesion laterality
    lesion_center = (
        float(side * subject_rng.uniform(24.0, 34.0)),
        float(subject_rng.uniform(-26.0, 20.0)),
        float(subject_rng.uniform(-CENTRAL_SLAB_HALF_WIDTH, CENTRAL_SLAB_HALF_WIDTH) * MRI_VOXEL_MM[2]),
    )
    shift = session_rng.normal(0.0, 1.0, size=3)
    return MriAnatomy(
        age=age,
        head_scale=float(subject_rng.uniform(0.95, 1.03)),
        ventricle_jitter=float(np.exp(subject_rng.normal(0.0, 0.03))),
        lesion_center_mm=lesion_center if subject.lesion else None,
        lesion_radius_vox=float(subject_rng.uniform(4.0, 7.0)),
        shift_mm=(float(shift[0]), float(shift[1]), float(shift[2])),
        texture_seed=int(subject_rng.integers(2**31)),
    )


# --------------------------------------------------------------------------------------------- MRI anatomy


def _ras_affine() -> np.ndarray:
    """RAS voxel→world affine with the centre of the field of view at the world origin."""
    spacing = np.array(MRI_VOXEL_MM)
    affine = np.diag([*spacing, 1.0])
    affine[:3, 3] = -spacing * (np.array(MRI_SHAPE) - 1) / 2.0
    return affine


def _world_grid(shift_mm: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """World coordinates of the RAS voxel grid, in the head's frame (the head moved by ``shift_mm``)."""
    affine = _ras_affine()
    axes = [affine[d, d] * np.arange(MRI_SHAPE[d]) + affine[d, 3] - shift_mm[d] for d in range(3)]
    return np.meshgrid(*axes, indexing="ij", sparse=True)


def ellipsoid_radius(
    x: np.ndarray, y: np.ndarray, z: np.ndarray, centre: Sequence[float], semi_axes: Sequence[float]
) -> np.ndarray:
    return np.sqrt(
        ((x - centre[0]) / semi_axes[0]) ** 2
        + ((y - centre[1]) / semi_axes[1]) ** 2
        + ((z - centre[2]) / semi_axes[2]) ** 2
    )


def _tissue_intensity(anatomy: MriAnatomy, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Piecewise-constant T1 intensities: scalp, skull, CSF, folded cortex, white matter, ventricles, lesion.

    Later tissues overwrite earlier ones; the lesion is painted last but never into the ventricles.
    """
    s = anatomy.head_scale
    r_head = ellipsoid_radius(x, y, z, (0.0, 0.0, -6.0), (76 * s, 86 * s, 82 * s))
    r_brain = ellipsoid_radius(x, y, z, (0.0, 0.0, 0.0), (62 * s, 74 * s, 62 * s))
    folds_rng = np.random.default_rng(anatomy.texture_seed)
    folds = gaussian_filter(folds_rng.standard_normal(MRI_SHAPE), sigma=1.5)
    folds /= folds.std()

    out = np.full(MRI_SHAPE, _T1["background"])
    out[r_head < 1.0] = _T1["scalp"]
    out[r_head < 0.93] = _T1["skull"]
    out[r_brain < 1.0] = _T1["csf"]
    brain = r_brain < 0.97 - 0.02 * (anatomy.age - 20.0) / 70.0  # mild atrophy with age
    sulci = (r_brain > 0.80) & (folds > 1.1)
    out[brain & ~sulci] = _T1["gm"]
    out[r_brain < 0.80 + 0.05 * folds] = _T1["wm"]
    fissure = (np.abs(x) < 2.5) & (z > -10.0) & (r_brain < 1.0) & (r_brain > 0.45)
    out[np.broadcast_to(fissure, MRI_SHAPE)] = _T1["csf"]

    out[ventricle_mask(anatomy)] = _T1["csf"]
    out[lesion_mask(anatomy)] = _LESION_T1
    return out


def _bias_field(
    style: SiteStyle, rng: np.random.Generator, x: np.ndarray, y: np.ndarray, z: np.ndarray
) -> np.ndarray:
    """Smooth multiplicative field: the site's main gradient plus a small per-session random part."""
    axis = np.array(style.bias_axis) / np.linalg.norm(style.bias_axis) + rng.normal(0.0, 0.15, 3)
    linear = (axis[0] * x + axis[1] * y + axis[2] * z) / 90.0
    quadratic = (x**2 + y**2 + z**2) / 90.0**2
    return np.exp(style.bias_amplitude * (linear - 0.5 * quadratic))


# --------------------------------------------------------------------------------------------- fundus


def _vessel_map(disc: tuple[float, float], side: float, rng: np.random.Generator) -> np.ndarray:
    """Soft map (0–1) of vessels leaving the optic disc in arcades that bend towards the macula."""
    n = FUNDUS_SIZE
    canvas = np.zeros((n, n))
    # Angles in image-math convention (x right, y up). Four arcade vessels leave up and down and curve
    # temporally around the macula; a few thinner ones run nasally.
    nasal = 0.0 if side > 0 else np.pi
    plans = [(up, True) for up in (1.0, 1.0, -1.0, -1.0)] + [
        (float(rng.choice([-1.0, 1.0])), False) for _ in range(int(rng.integers(2, 5)))
    ]
    t = np.linspace(0.0, 1.0, 400)
    for up, arcade in plans:
        if arcade:
            start = up * (np.pi / 2 + side * rng.uniform(0.1, 0.5))
            bend = side * up * rng.uniform(0.6, 1.4)
            length, width0 = rng.uniform(90.0, 130.0), rng.uniform(1.6, 2.2)
        else:
            start = nasal + up * rng.uniform(0.2, 1.1)
            bend = rng.normal(0.0, 0.3)
            length, width0 = rng.uniform(45.0, 80.0), rng.uniform(1.0, 1.5)
        angle = start + bend * t + np.cumsum(rng.normal(0.0, 0.02, t.size))
        step = length / t.size
        px = disc[0] + np.cumsum(np.cos(angle) * step)
        py = disc[1] - np.cumsum(np.sin(angle) * step)
        width = width0 * (1.0 - 0.6 * t)
        keep = (px >= 0) & (px < n) & (py >= 0) & (py < n)
        np.add.at(canvas, (py[keep].astype(int), px[keep].astype(int)), width[keep])
    soft = gaussian_filter(canvas, sigma=1.0)
    return np.clip(soft * 2.5, 0.0, 1.0)


def _exudate_map(
    macula: tuple[float, float], disc: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    """Soft map of a cluster of small bright spots between the macula and the vascular arcades."""
    n = FUNDUS_SIZE
    yy, xx = np.mgrid[0:n, 0:n]
    n_spots = int(rng.integers(10, 26))
    cx = rng.uniform(-1.0, 1.0) * 15.0 + 0.7 * macula[0] + 0.3 * disc[0]
    cy = macula[1] + rng.choice([-1.0, 1.0]) * rng.uniform(10.0, 30.0)
    sx = rng.normal(cx, 12.0, n_spots)[:, None, None]
    sy = rng.normal(cy, 9.0, n_spots)[:, None, None]
    size = rng.uniform(1.2, 2.8, n_spots)[:, None, None]
    spots = np.exp(-(((xx - sx) ** 2 + (yy - sy) ** 2) / (2 * size**2))).max(axis=0)
    return np.clip(spots * 1.4, 0.0, 1.0)


def _jpeg_roundtrip(pixels: np.ndarray, quality: int) -> np.ndarray:
    """Compress and decompress, so sites differ in compression artefacts as real fundus archives do."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="RGB").save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


# --------------------------------------------------------------------------------------------- helpers


def _validate(sites: Sequence[str], n_subjects: int) -> list[str]:
    names = [str(s) for s in sites]
    if not names:
        raise MedprobeError("demo needs at least one site name")
    if len(set(names)) != len(names):
        raise MedprobeError(f"demo site names must be unique, got {names}")
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
            raise MedprobeError(f"demo site name {name!r} must be letters, digits, '.', '_' or '-'")
    if n_subjects < MIN_SUBJECTS:
        raise MedprobeError(
            f"demo needs at least {MIN_SUBJECTS} subjects per site so both classes reach both splits; "
            f"got {n_subjects}"
        )
    return names


def _style_for(index: int, rng: np.random.Generator) -> SiteStyle:
    if index == 0:
        return REFERENCE_STYLE
    if index == 1:
        return SHIFTED_STYLE
    cast = rng.uniform(0.85, 1.2, 3)
    return SiteStyle(
        axcodes=("RAS", "LPS", "LAS", "RPS")[index % 4],
        scale=float(rng.uniform(0.7, 1.5)),
        offset=float(rng.uniform(0.0, 80.0)),
        noise_sd=float(rng.uniform(10.0, 35.0)),
        bias_amplitude=float(rng.uniform(0.05, 0.2)),
        bias_axis=tuple(rng.normal(0.0, 1.0, 3).tolist()),
        fundus_cast=tuple(cast.tolist()),
        fundus_brightness=float(rng.uniform(0.75, 1.1)),
        fundus_noise_sd=float(rng.uniform(1.0, 6.0)),
        jpeg_quality=int(rng.integers(50, 96)),
    )


def _id_prefix(site: str) -> str:
    """``site-a`` → ``A``; the last word of the site name, so IDs look like each site's own numbering."""
    token = re.split(r"[-_.]+", site.strip("-_."))[-1] if site.strip("-_.") else site
    return (re.sub(r"[^A-Za-z0-9]", "", token).upper()[:3]) or "S"
