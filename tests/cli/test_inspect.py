"""`medprobe inspect`: JSON lines with the required keys, exit codes 0/2/3, DICOM series, no PHI in the output."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from medprobe.cli.main import main
from tests.conftest import write_volume

DICOM_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
REQUIRED_KEYS = {"path", "ok", "reason", "shape", "spacing", "orientation", "modality", "dtype", "min", "max",
                 "mean", "series", "location", "files", "volumes", "warnings"}


def json_rows(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def test_json_lines_with_physical_statistics_of_a_known_array(tmp_path: Path, capsys) -> None:
    data = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4) - 5
    data[0, 0, 0] = np.nan
    path = write_volume(tmp_path / "known.nii.gz", data, np.diag([0.5, 0.5, 2.0, 1.0]))
    assert main(["inspect", "--json", str(path)]) == 0
    (row,) = json_rows(capsys.readouterr().out)
    assert set(row) >= REQUIRED_KEYS
    assert row["path"] == str(path) and row["ok"] is True
    assert row["shape"] == [2, 3, 4] and row["spacing"] == [0.5, 0.5, 2.0] and row["orientation"] == "RAS"
    assert row["dtype"] == "float32"
    assert (row["min"], row["max"]) == (-4.0, 18.0)
    assert row["mean"] == pytest.approx(float(np.nanmean(data)), rel=1e-6)


def test_rescaled_nifti_reports_physical_values_and_stored_dtype(tmp_path: Path, capsys) -> None:
    import nibabel as nib

    path = tmp_path / "scaled.nii.gz"
    image = nib.Nifti1Image(np.array([[[0, 10]]], dtype=np.int16), np.eye(4))
    image.header.set_slope_inter(2.0, -100.0)
    nib.save(image, str(path))
    assert main(["inspect", "--json", str(path)]) == 0
    (row,) = json_rows(capsys.readouterr().out)
    assert row["dtype"] == "int16" and (row["min"], row["max"], row["mean"]) == (-100.0, -80.0, -90.0)


def test_unreadable_and_missing_inputs_exit_3_with_reasons(tmp_path: Path, capsys) -> None:
    good = write_volume(tmp_path / "good.nii.gz", np.ones((3, 3, 3), dtype=np.float32))
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x00garbage")
    assert main(["inspect", "--json", str(good), str(corrupt), "no/such/file.nii"]) == 3
    rows = json_rows(capsys.readouterr().out)
    assert [r["ok"] for r in rows] == [True, False, False]
    assert rows[2]["path"] == "no/such/file.nii" and rows[2]["reason"] == "file not found"
    assert rows[1]["reason"] and "not a readable NIfTI" in rows[1]["reason"]


def test_table_output_is_aligned_and_summarised(tmp_path: Path, capsys) -> None:
    good = write_volume(tmp_path / "good.nii.gz", np.ones((3, 3, 3), dtype=np.float32))
    assert main(["inspect", str(good), str(tmp_path / "missing.png")]) == 3
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"in {tmp_path}:"  # the folder every path shares, then the paths relative to it
    assert lines[1].split()[:3] == ["path", "series", "ok"]
    assert lines[2].startswith("good.nii.gz ") and "3x3x3" in lines[2] and "2x2x2" in lines[2]
    assert lines[3].split()[:3] == ["missing.png", "-", "NO"]
    assert lines[4:6] == ["notes:", "  missing.png: file not found"]
    assert lines[-1] == "2 image(s): 1 read, 1 unreadable"
    assert max(map(len, lines)) <= 120


def test_no_paths_is_a_usage_error(capsys) -> None:
    assert main(["inspect"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least one PATH" in err


def test_a_dicom_folder_with_several_series_gives_one_line_each(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "study"
    folder.mkdir()
    series_dirs = ["77654033/CT2", "98892001/CT5N", "77654033/CR1"]
    for name in series_dirs:
        for file in (DICOM_FILES / "dicomdirtests" / name).iterdir():
            shutil.copy(file, folder / file.name)
    assert main(["inspect", "--json", str(folder)]) == 0
    rows = json_rows(capsys.readouterr().out)
    assert len(rows) == 3
    assert len({r["series"] for r in rows}) == 3 and all(r["series"] for r in rows)
    assert all(r["ok"] and r["path"] == str(folder) and isinstance(r["warnings"], list) for r in rows)
    assert sorted(r["modality"] for r in rows) == ["ct", "ct", "xray"]  # medprobe's names for CT, CT, CR
    assert sorted(r["slices"] for r in rows) == [1, 4, 5]
    assert all(set(r) >= REQUIRED_KEYS for r in rows)


def test_pydicom_dicomdir_tree_lists_its_series(capsys) -> None:
    code = main(["inspect", "--json", str(DICOM_FILES / "dicomdirtests")])
    assert code in (0, 3)  # the tree also holds series without pixel data
    rows = json_rows(capsys.readouterr().out)
    assert len(rows) >= 2 and len({r["series"] for r in rows}) == len(rows)
    assert all(set(r) >= REQUIRED_KEYS for r in rows)
    assert any(r["ok"] for r in rows)


def _phi_values(path: Path) -> list[str]:
    ds = pydicom.dcmread(path)
    values = [str(ds.PatientName), str(ds.PatientID), str(ds.StudyDate), str(ds.SOPInstanceUID),
              str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID)]
    if ds.get("InstitutionName"):
        values.append(str(ds.InstitutionName))
    assert all(values)
    return values


@pytest.mark.parametrize("json_flag", [["--json"], []])
def test_nothing_identifying_from_ct_small_reaches_the_output(tmp_path: Path, capsys, json_flag) -> None:
    source = DICOM_FILES / "CT_small.dcm"
    folder = tmp_path / "series"
    folder.mkdir()
    shutil.copy(source, folder / "slice.dcm")
    main(["inspect", *json_flag, str(source), str(folder)])
    captured = capsys.readouterr()
    output = captured.out + captured.err
    for value in _phi_values(source):
        assert value not in output, value
    if json_flag:
        folder_rows = [r for r in json_rows(captured.out) if r["path"] == str(folder)]
        assert len(folder_rows) == 1 and folder_rows[0]["ok"] and folder_rows[0]["modality"] == "ct"
        assert folder_rows[0]["dtype"] == "int16" and folder_rows[0]["min"] < 0  # rescale intercept -1024


def test_subprocess_run_on_bad_inputs_has_no_traceback(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG broken")
    empty = tmp_path / "empty.nii.gz"
    empty.touch()
    done = subprocess.run(
        [sys.executable, "-m", "medprobe.cli.main", "inspect", "--json", str(corrupt), str(empty),
         str(tmp_path / "absent.mha"), str(DICOM_FILES / "dicomdirtests")],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 3
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout
    rows = json_rows(done.stdout)
    assert [r["ok"] for r in rows[:3]] == [False, False, False]
    assert "0 bytes" in rows[1]["reason"]


def test_a_4d_series_is_read_with_a_note_on_what_a_job_does(tmp_path: Path, capsys) -> None:
    path = write_volume(tmp_path / "dwi.nii.gz", np.ones((4, 4, 3, 7), dtype=np.float32))
    assert main(["inspect", "--json", str(path)]) == 0
    (row,) = json_rows(capsys.readouterr().out)
    assert row["ok"] and row["shape"] == [4, 4, 3] and row["channels"] == 7 and row["volumes"] == 7
    assert any("4D series: 7 volumes on the 4th axis" in w and "volume_index or reduce_4d" in w
               for w in row["warnings"])


def test_a_study_folder_lists_each_series_at_its_own_location(tmp_path: Path, capsys) -> None:
    from tests.dicom_writers import write_ct_series

    study = tmp_path / "study"
    write_ct_series(study / "SE1", np.zeros((6, 6, 3), np.float32))
    write_ct_series(study / "SE2", np.zeros((6, 6, 2), np.float32))
    (study / "SE3").mkdir()
    (study / "SE3" / "x.dcm").write_bytes(next((study / "SE2").iterdir()).read_bytes()[:400])  # header only
    assert main(["inspect", "--json", str(study)]) == 3
    rows = json_rows(capsys.readouterr().out)
    assert [(r["location"], r["files"], r["ok"]) for r in rows] == [
        (str(study / "SE1"), 3, True), (str(study / "SE2"), 2, True), (str(study), 1, False)]
    assert rows[2]["series"] is None and rows[2]["reason"].startswith("1 file(s) in no readable series: 1 × ")
    assert main(["inspect", str(study)]) == 3
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"in {tmp_path}:"  # the study folder itself is one of the locations
    assert lines[1].split()[:4] == ["path", "series", "ok", "files"]
    assert lines[2].split()[:4] == ["study/SE1", rows[0]["series"], "yes", "3"]
    assert lines[-1] == "3 image(s): 2 read, 1 unreadable"
