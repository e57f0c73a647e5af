"""The phantom study's factors do what its docstring says, measured on the rendered volumes."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from medprobe.demo.phantom import SCANNERS, TISSUE, Subject, render_session, write_phantom_study
from medprobe.errors import MedprobeError

SHAPE = (32, 32, 32)


def subject(**changes: float) -> Subject:
    base = {"subject_id": "P001", "baseline_age": 60.0, "disease": 0, "scanner": 0, "head_scale": 1.0,
            "ventricle_jitter": 1.0, "hippocampus_jitter": 1.0, "fold_seed": 7}
    return Subject(**{**base, **changes})  # type: ignore[arg-type]


def dark_fraction(volume: np.ndarray, region: tuple[slice, ...]) -> float:
    """Share of voxels closer to CSF than to grey matter inside `region` (noise-free enough at these sizes)."""
    threshold = (TISSUE["csf"] + TISSUE["gm"]) / 2
    return float((volume[region] < threshold).mean())


def test_age_widens_the_ventricles_and_disease_empties_the_hippocampi() -> None:
    rng = lambda: np.random.default_rng(0)  # noqa: E731 - the same noise for both renders
    centre = (slice(11, 21), slice(8, 24), slice(16, 22))  # the ventricles
    young = render_session(subject(), 60.0, 0.0, SHAPE, 5.0, rng())
    old = render_session(subject(), 84.0, 0.0, SHAPE, 5.0, rng())
    assert dark_fraction(old, centre) > dark_fraction(young, centre) + 0.05
    temporal = (slice(3, 29), slice(10, 22), slice(9, 16))  # both hippocampi and their horns
    control = render_session(subject(), 70.0, 0.0, SHAPE, 5.0, rng())
    disease = render_session(subject(disease=1), 70.0, 0.0, SHAPE, 5.0, rng())
    assert dark_fraction(disease, temporal) > dark_fraction(control, temporal) + 0.02
    # disease leaves the ventricles alone, age leaves the hippocampi (almost) alone
    assert abs(dark_fraction(disease, centre) - dark_fraction(control, centre)) < 0.01


def test_scanners_change_intensities_not_anatomy() -> None:
    volumes = [render_session(subject(scanner=s), 70.0, 0.0, SHAPE, 5.0, np.random.default_rng(0))
               for s in range(len(SCANNERS))]
    medians = [float(np.median(v[v > 300])) for v in volumes]
    assert len({round(m, -1) for m in medians}) == len(SCANNERS)


def test_study_is_longitudinal_balanced_and_deterministic(tmp_path: Path) -> None:
    first = write_phantom_study(tmp_path / "a", n_subjects=6, sessions=3, interval_months=18, shape=(16, 16, 16))
    write_phantom_study(tmp_path / "b", n_subjects=6, sessions=3, interval_months=18, shape=(16, 16, 16))
    table = first.table
    assert len(table) == 18 and table.groupby("subject_id").size().eq(3).all()
    assert table.groupby("subject_id")["disease"].nunique().eq(1).all()
    assert table.groupby("subject_id")["disease"].first().sum() == 3
    ages = table.pivot(index="subject_id", columns="session", values="age")
    assert np.allclose(ages[2] - ages[0], 3.0, atol=0.02)
    image = nib.load(tmp_path / "a" / table["path"][0])
    assert image.shape == (16, 16, 16) and nib.aff2axcodes(image.affine) == ("R", "A", "S")
    for path in table["path"]:
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes()
    with pytest.raises(MedprobeError, match="at least 4 subjects"):
        write_phantom_study(tmp_path / "c", n_subjects=2)
