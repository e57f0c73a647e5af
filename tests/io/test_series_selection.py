"""A study folder with several series: a manifest's series_uid picks one; without it the folder is refused with the
hint; UIDs never appear in a reason; series whose files are unusable are listed, not dropped."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from medprobe.errors import ReadError
from medprobe.io import index_folder, read_image
from medprobe.io.inspection import inspect_path
from tests.conftest import write_volume
from tests.dicom_writers import write_ct_series, write_slice


def _volume(level: float, shape: tuple[int, int, int] = (8, 6, 4)) -> np.ndarray:
    return np.full(shape, level, np.float32) + np.arange(shape[2], dtype=np.float32)


@pytest.fixture
def study(tmp_path: Path) -> tuple[Path, str, str]:
    """A study folder: two CT series in sub-folders of their own, with known UIDs."""
    first, second = generate_uid(), generate_uid()
    write_ct_series(tmp_path / "study" / "SE01", _volume(100.0), series_uid=first)
    write_ct_series(tmp_path / "study" / "SE02", _volume(-500.0, (8, 6, 5)), series_uid=second, seed=1)
    return tmp_path / "study", first, second


def test_without_series_uid_a_folder_of_several_series_says_what_to_add(study) -> None:
    folder, first, second = study
    with pytest.raises(ReadError) as caught:
        read_image(folder)
    reason = caught.value.reason
    assert reason.startswith("2 DICOM series in the folder") and "Add a series_uid column to the manifest" in reason
    assert first not in str(caught.value) and second not in str(caught.value)


def test_series_uid_selects_one_series_of_a_study_folder(study) -> None:
    folder, first, second = study
    one = read_image(folder, series_uid=first)
    two = read_image(folder, series_uid=f"  {second} ")  # stray spaces from a spreadsheet
    assert one.spatial_shape == (8, 6, 4) and two.spatial_shape == (8, 6, 5)
    np.testing.assert_allclose(one.array[0], _volume(100.0), atol=1e-3)
    np.testing.assert_allclose(two.array[0], _volume(-500.0, (8, 6, 5)), atol=1e-3)
    assert read_image(folder, "ct", series_uid=first).modality == "ct"
    assert read_image(folder / "SE01", series_uid=first).spatial_shape == (8, 6, 4)


def test_an_unknown_series_uid_counts_the_series_without_naming_uids(study) -> None:
    folder, first, second = study
    wanted = generate_uid()
    with pytest.raises(ReadError) as caught:
        read_image(folder, series_uid=wanted)
    assert "none of the 2 DICOM series in the folder has the manifest's series_uid" in caught.value.reason
    for uid in (first, second, wanted):
        assert uid not in str(caught.value)


def test_series_uid_on_a_file(study, tmp_path: Path) -> None:
    folder, first, second = study
    slice_file = next((folder / "SE01").iterdir())
    assert read_image(slice_file, series_uid=first).spatial_dims == 2
    with pytest.raises(ReadError, match="belongs to another series") as caught:
        read_image(slice_file, series_uid=second)
    assert second not in str(caught.value) and first not in str(caught.value)
    nifti = write_volume(tmp_path / "t1.nii.gz", np.ones((3, 3, 3), np.float32))
    with pytest.raises(ReadError, match="not a DICOM file or folder"):
        read_image(nifti, series_uid=first)
    assert read_image(nifti, series_uid="  ").spatial_shape == (3, 3, 3)  # a blank cell is no selection


def _without_rows(path: Path) -> None:
    ds = pydicom.dcmread(path)
    del ds.Rows
    ds.save_as(path)


def test_a_series_of_unusable_files_is_listed_with_its_reason(study) -> None:
    folder, first, second = study
    for path in (folder / "SE02").iterdir():
        _without_rows(path)
    index = index_folder(folder)
    assert len(index) == 2 and index.skipped == {}
    broken = next(s for s in index if s.problem)
    assert broken.problem == "none of its 5 image file(s) is usable: 5 × unusable DICOM header"
    assert broken.folder == folder / "SE02" and len(broken.files) == 5
    with pytest.raises(ReadError, match="none of its 5 image file"):
        read_image(folder, series_uid=second)
    assert read_image(folder, series_uid=first).spatial_shape == (8, 6, 4)
    rows = inspect_path(str(folder))
    assert [(r["location"], r["files"], r["ok"]) for r in rows] == [
        (str(folder / "SE01"), 4, True), (str(folder / "SE02"), 5, False)]
    assert "unusable DICOM header" in rows[1]["reason"] and rows[1]["series"] == broken.key


def test_unusable_files_next_to_usable_ones_are_a_warning_on_their_series(tmp_path: Path) -> None:
    uid = generate_uid()
    folder = write_ct_series(tmp_path / "ct", _volume(0.0, (8, 6, 5)), series_uid=uid)
    _without_rows(sorted(folder.iterdir())[0])
    (series,) = index_folder(folder)
    assert series.problem is None and len(series.files) == 4
    assert "1 file(s) of the series left out: 1 × unusable DICOM header" in series.warnings


def test_inspect_shows_each_series_location_relative_to_the_given_path(study, monkeypatch) -> None:
    folder, _, _ = study
    monkeypatch.chdir(folder.parent)
    rows = inspect_path("study")
    assert [(r["path"], r["location"], r["files"], r["slices"]) for r in rows] == [
        ("study", str(Path("study") / "SE01"), 4, 4), ("study", str(Path("study") / "SE02"), 5, 5)]


def test_a_series_uid_never_reaches_inspect_output(tmp_path: Path) -> None:
    uid = generate_uid()
    write_slice(tmp_path / "one" / "a.dcm", np.zeros((4, 4), np.int16), (0.0, 0.0, 0.0), uid)
    (row,) = inspect_path(str(tmp_path / "one"))
    assert row["ok"] and uid not in repr(row)
    assert uid not in repr(index_folder(tmp_path / "one"))
