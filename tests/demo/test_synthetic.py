"""The demo dataset must be real files with the properties the demo claims: labels a model can learn, a
per-subject split, and a site shift that includes on-disk orientation."""

from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from PIL import Image
from scipy.stats import spearmanr

from medprobe.demo.synthetic import (
    FUNDUS_SIZE,
    MRI_SHAPE,
    REFERENCE_STYLE,
    SHIFTED_STYLE,
    DemoDataset,
    MriAnatomy,
    _draw_subjects,
    _session_anatomy,
    lesion_mask,
    mri_image,
    render_mri,
    site_rng,
    write_demo_dataset,
)
from medprobe.errors import MedprobeError

N_SUBJECTS = 8


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> DemoDataset:
    return write_demo_dataset(tmp_path_factory.mktemp("demo"), n_subjects=N_SUBJECTS, seed=0)


def _manifests(ds: DemoDataset, kind: str) -> dict[str, pd.DataFrame]:
    return {s.name: pd.read_csv(getattr(s, f"{kind}_manifest")) for s in ds.sites}


def _canonical(manifest: Path, rel: str) -> np.ndarray:
    return np.asarray(nib.as_closest_canonical(nib.load(manifest.parent / rel)).dataobj, dtype=np.float64)


def test_layout_and_manifest_columns(dataset: DemoDataset) -> None:
    assert [s.name for s in dataset.sites] == ["site-a", "site-b"]
    assert dataset.root.is_absolute()
    for site in dataset.sites:
        assert site.mri_manifest == dataset.root / site.name / "mri" / "manifest.csv"
        assert site.fundus_manifest == dataset.root / site.name / "fundus" / "manifest.csv"
        mri, fundus = pd.read_csv(site.mri_manifest), pd.read_csv(site.fundus_manifest)
        assert list(mri.columns) == ["path", "subject_id", "split", "lesion", "age", "sex"]
        assert list(fundus.columns) == ["path", "subject_id", "split", "lesion", "sex"]
        assert fundus.subject_id.nunique() == len(fundus) == N_SUBJECTS
        assert mri.subject_id.nunique() == N_SUBJECTS
        for frame, folder, pattern in (
            (mri, site.mri_manifest.parent, r"sub-\d{4}_ses-[12]\.nii\.gz"),
            (fundus, site.fundus_manifest.parent, r"sub-\d{4}\.png"),
        ):
            assert all(re.fullmatch(pattern, p) for p in frame.path)
            assert all((folder / p).is_file() for p in frame.path)
        prefix = site.name[-1].upper()
        assert all(re.fullmatch(rf"{prefix}-\d{{4}}", s) for s in mri.subject_id)
        assert mri.age.between(20, 90).all()
        assert set(mri.lesion) == set(fundus.lesion) == {0, 1}


def test_mri_headers(dataset: DemoDataset) -> None:
    expected_codes = {"site-a": ("R", "A", "S"), "site-b": ("L", "P", "S")}
    for site in dataset.sites:
        rel = pd.read_csv(site.mri_manifest).path[0]
        image = nib.load(site.mri_manifest.parent / rel)
        assert image.shape == MRI_SHAPE
        assert image.get_data_dtype() == np.int16
        assert image.header.get_zooms() == pytest.approx((3.0, 3.0, 3.5))
        assert image.header.get_xyzt_units() == ("mm", "sec")
        assert int(image.header["qform_code"]) == int(image.header["sform_code"]) == 1
        np.testing.assert_allclose(image.get_qform(), image.get_sform())
        assert nib.aff2axcodes(image.affine) == expected_codes[site.name]
        data = np.asarray(image.dataobj)
        assert data.min() >= 0 and data.max() < 4000


def test_sites_share_world_grid_after_canonicalisation(dataset: DemoDataset) -> None:
    affines = []
    for site in dataset.sites:
        rel = pd.read_csv(site.mri_manifest).path[0]
        affines.append(nib.as_closest_canonical(nib.load(site.mri_manifest.parent / rel)).affine)
    np.testing.assert_allclose(affines[0], affines[1])
    np.testing.assert_allclose(np.diag(affines[0]), [3.0, 3.0, 3.5, 1.0])


@pytest.mark.parametrize("axcodes", ["LPS", "LAS", "RPS"])
def test_stored_orientation_keeps_patient_left_on_the_left(axcodes: str, tmp_path: Path) -> None:
    anatomy = MriAnatomy(age=50.0, lesion_center_mm=(-30.0, 0.0, 0.0), lesion_radius_vox=5.0)
    volume = render_mri(anatomy, REFERENCE_STYLE, np.random.default_rng(3))
    reference = nib.as_closest_canonical(mri_image(volume, "RAS"))
    nib.save(mri_image(volume, axcodes), tmp_path / "v.nii.gz")
    stored = nib.load(tmp_path / "v.nii.gz")
    assert nib.aff2axcodes(stored.affine) == tuple(axcodes)
    assert not np.array_equal(np.asarray(stored.dataobj), volume)
    canonical = nib.as_closest_canonical(stored)
    np.testing.assert_array_equal(np.asarray(canonical.dataobj), volume)
    np.testing.assert_allclose(canonical.affine, reference.affine)

    centre_vox = np.argwhere(lesion_mask(anatomy)).mean(axis=0)
    centre_world = nib.affines.apply_affine(canonical.affine, centre_vox)
    assert centre_world[0] == pytest.approx(-30.0, abs=1.5)  # patient's left is negative x in RAS
    bright = np.argwhere(np.asarray(canonical.dataobj) > 1250).mean(axis=0)
    assert nib.affines.apply_affine(canonical.affine, bright)[0] < -15.0


def test_splits_are_per_subject_and_stratified(dataset: DemoDataset) -> None:
    for site in dataset.sites:
        mri, fundus = pd.read_csv(site.mri_manifest), pd.read_csv(site.fundus_manifest)
        assert set(mri.split) == set(fundus.split) == {"train", "test"}
        assert (mri.groupby("subject_id").split.nunique() == 1).all()
        split_of = dict(zip(fundus.subject_id, fundus.split, strict=True))
        assert (mri.subject_id.map(split_of) == mri.split).all()
        for frame in (mri, fundus):
            for split in ("train", "test"):
                assert set(frame.loc[frame.split == split, "lesion"]) == {0, 1}, (site.name, split)
        n_test = (fundus.split == "test").sum()
        assert 0.2 <= n_test / len(fundus) <= 0.5


def test_repeat_sessions_share_lesion_and_age_a_few_years_apart() -> None:
    subjects = _draw_subjects("site-a", 48, site_rng(0, "site-a"))
    repeats = [s for s in subjects if len(s.ages) == 2]
    assert 0.2 <= len(repeats) / len(subjects) <= 0.4
    assert all(1.5 <= s.ages[1] - s.ages[0] <= 3.0 and s.ages[1] <= 90 for s in repeats)
    assert abs(np.mean([s.lesion for s in subjects]) - 0.5) < 0.05


def test_repeat_sessions_in_manifest(dataset: DemoDataset) -> None:
    mri = pd.concat(_manifests(dataset, "mri").values())
    per_subject = mri.groupby("subject_id")
    assert (per_subject.lesion.nunique() == 1).all()
    twice = per_subject.filter(lambda g: len(g) == 2)
    assert len(twice) > 0
    for _, pair in twice.groupby("subject_id"):
        assert pair.path.str.contains("_ses-1").sum() == 1
        assert pair.age.iloc[1] - pair.age.iloc[0] == pytest.approx(2.25, abs=0.8)


def test_ventricle_volume_tracks_age(dataset: DemoDataset) -> None:
    for site in dataset.sites:
        mri = pd.read_csv(site.mri_manifest)
        dark = []
        for rel in mri.path:
            box = _canonical(site.mri_manifest, rel)[22:42, 16:48, 20:36]  # around the ventricles
            dark.append(int((box < 0.5 * np.percentile(box, 75)).sum()))  # CSF is < half of white matter
        rho = spearmanr(mri.age, dark).statistic
        assert rho > 0.7, (site.name, rho)


def test_lesion_volumes_have_more_bright_voxels(dataset: DemoDataset) -> None:
    for site in dataset.sites:
        mri = pd.read_csv(site.mri_manifest)
        bright = []
        for rel in mri.path:
            volume = _canonical(site.mri_manifest, rel)
            white_matter = np.percentile(volume[22:42, 16:48, 20:36], 75)
            bright.append(int((volume > 1.3 * white_matter).sum()))
        bright_arr = np.array(bright)
        assert bright_arr[mri.lesion == 1].min() > bright_arr[mri.lesion == 0].max(), site.name


def test_lesion_reaches_the_three_central_axial_slices() -> None:
    middle = MRI_SHAPE[2] // 2
    for seed in range(3):
        for subject in _draw_subjects("site-a", 48, site_rng(seed, "site-a")):
            if not subject.lesion:
                continue
            mask = lesion_mask(_session_anatomy(subject, subject.ages[0], np.random.default_rng(0)))
            per_slice = mask.sum(axis=(0, 1))
            assert (per_slice[middle - 1 : middle + 2] > 0).all()
            assert per_slice.max() >= 4 * 4


def test_fundus_images(dataset: DemoDataset) -> None:
    mean_colour = {}
    for site in dataset.sites:
        fundus = pd.read_csv(site.fundus_manifest)
        pixels = []
        for rel in fundus.path:
            with Image.open(site.fundus_manifest.parent / rel) as image:
                assert image.format == "PNG" and image.mode == "RGB"
                assert image.size == (FUNDUS_SIZE, FUNDUS_SIZE)
                pixels.append(np.asarray(image))
        stack = np.stack(pixels)
        assert stack.dtype == np.uint8
        assert stack[:, 0, 0].max() < 20  # black outside the retina
        bright = (stack[..., 1] > 130).sum(axis=(1, 2))  # optic disc plus any exudates
        lesion = fundus.lesion.to_numpy() == 1
        assert bright[lesion].min() > bright[~lesion].max(), site.name
        centre = stack[:, 72:152, 72:152].reshape(-1, 3).mean(axis=0)
        mean_colour[site.name] = centre
    a, b = mean_colour["site-a"], mean_colour["site-b"]
    assert a[0] > a[2] * 2  # orange-red retina
    assert b[2] / b[0] > 1.2 * a[2] / a[0]  # site-b has a blue cast
    assert b.sum() < a.sum()  # and is darker


def test_site_b_intensity_shift(dataset: DemoDataset) -> None:
    levels = {}
    for site in dataset.sites:
        rel = pd.read_csv(site.mri_manifest).path
        levels[site.name] = np.mean([np.percentile(_canonical(site.mri_manifest, p), 95) for p in rel])
    ratio = levels["site-b"] / levels["site-a"]
    assert ratio == pytest.approx(SHIFTED_STYLE.scale, rel=0.12)


@pytest.mark.slow
def test_same_seed_same_bytes_and_sites_are_independent(tmp_path: Path) -> None:
    first = write_demo_dataset(tmp_path / "one", n_subjects=8, seed=5)
    again = write_demo_dataset(tmp_path / "two", n_subjects=8, seed=5)
    alone = write_demo_dataset(tmp_path / "alone", sites=["site-a"], n_subjects=8, seed=5)
    other = write_demo_dataset(tmp_path / "other", sites=["site-a"], n_subjects=8, seed=6)

    def files(ds: DemoDataset, site: str = "") -> dict[str, bytes]:
        root = ds.root / site
        return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert files(first) == files(again)
    assert files(alone, "site-a") == files(first, "site-a")
    assert files(other, "site-a") != files(first, "site-a")


@pytest.mark.parametrize(
    ("sites", "n_subjects"),
    [(["site-a"], 4), ([], 8), (["x", "x"], 8), (["../escape"], 8)],
)
def test_rejects_bad_arguments(sites: list[str], n_subjects: int, tmp_path: Path) -> None:
    with pytest.raises(MedprobeError):
        write_demo_dataset(tmp_path, sites=sites, n_subjects=n_subjects)
