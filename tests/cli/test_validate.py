"""`medprobe validate`: exit codes 0/2/3, each problem class in the output, no raw subject IDs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medprobe.cli.main import main
from tests.conftest import write_volume

SUBJECTS = [f"MRN-77{i:03d}" for i in range(10)]


def write_manifest(tmp_path: Path, edit=None, name: str = "manifest.csv") -> Path:
    rows = []
    for i, subject in enumerate(SUBJECTS):
        path = write_volume(tmp_path / "images" / f"img{i:02d}.nii.gz", np.full((3, 3, 3), i, dtype=np.float32))
        rows.append({"path": f"images/{path.name}", "subject_id": subject, "site": "site-a",
                     "split": "test" if i >= 6 else "train", "label": i % 2, "age": 40.25 + i})
    frame = pd.DataFrame(rows)
    if edit:
        frame = edit(frame)
    manifest = tmp_path / name
    frame.to_csv(manifest, index=False)
    return manifest


def test_a_clean_manifest_exits_0_with_a_summary(tmp_path: Path, capsys) -> None:
    assert main(["validate", str(write_manifest(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "10 rows, 10 subjects, 1 site(s), split(s): train, test" in out
    assert "label 'label': categorical, 2 class(es)" in out and "label 'age': continuous" in out
    assert out.rstrip().endswith("clean: no problems, 0 warning(s)")


def test_a_missing_file_exits_3_and_names_it(tmp_path: Path, capsys) -> None:
    manifest = write_manifest(tmp_path)
    (tmp_path / "images" / "img03.nii.gz").unlink()
    assert main(["validate", str(manifest)]) == 3
    out = capsys.readouterr().out
    assert "file not found: " in out and "img03.nii.gz (row(s) 5)" in out


def test_duplicate_paths_exit_3(tmp_path: Path, capsys) -> None:
    def duplicate(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[4, "path"] = frame.loc[1, "path"]
        return frame

    assert main(["validate", str(write_manifest(tmp_path, duplicate))]) == 3
    assert "duplicate path on rows 3, 6" in capsys.readouterr().out


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_leakage_exits_3_and_shows_the_sites_own_ids_with_rows(tmp_path: Path, capsys, json_flag) -> None:
    """validate runs at the site for its staff: a leaking subject is shown by its own ID and its manifest rows."""
    def leak(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[7, "subject_id"] = frame.loc[0, "subject_id"]
        frame.loc[8, "subject_id"] = frame.loc[1, "subject_id"]
        return frame

    assert main(["validate", str(write_manifest(tmp_path, leak)), *json_flag]) == 3
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "2 subject(s) in more than one split (train+test: 2)" in output
    if json_flag:
        (leakage,) = json.loads(captured.out)["leakage"]
        assert [(d["subject_id"], d["splits"], d["rows"]) for d in leakage["details"]] == [
            ("MRN-77000", "train+test", [2, 9]), ("MRN-77001", "train+test", [3, 10])]
    else:
        assert "subject 'MRN-77000' (sub-" in output and "at site 'site-a' is in train+test: rows 2, 9" in output
        assert "subject 'MRN-77001' (sub-" in output and "rows 3, 10" in output
    for subject in SUBJECTS[2:]:
        assert subject not in output  # subjects that do not leak are never named


def test_class_warnings_keep_exit_0(tmp_path: Path, capsys) -> None:
    def skew(frame: pd.DataFrame) -> pd.DataFrame:
        frame["label"] = ["a", "a", "b", "b", "a", "b", "a", "a", "a", "c"]
        return frame

    assert main(["validate", str(write_manifest(tmp_path, skew)), "--labels", "label"]) == 0
    out = capsys.readouterr().out
    assert "split 'test' has no rows of class 'b'" in out
    assert "class 'c' has fewer than 2 subjects" in out
    assert "label 'age'" not in out  # only the requested label column


def test_check_read_finds_an_unreadable_image(tmp_path: Path, capsys) -> None:
    manifest = write_manifest(tmp_path)
    (tmp_path / "images" / "img02.nii.gz").write_text("garbage")
    assert main(["validate", str(manifest)]) == 0
    capsys.readouterr()
    assert main(["validate", str(manifest), "--check-read", "--json"]) == 3
    report = json.loads(capsys.readouterr().out)
    assert report["clean"] is False and report["read_checked"] is True
    (issue,) = report["file_issues"]
    assert issue["rows"] == [4] and "not a readable NIfTI" in issue["reason"]


def test_json_report_has_the_structure(tmp_path: Path, capsys) -> None:
    assert main(["validate", "--json", str(write_manifest(tmp_path))]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["clean"] is True and report["problems"] == [] and report["rows"] == 10
    labels = {entry["column"]: entry for entry in report["labels"]}
    assert labels["label"]["kind"] == "categorical" and labels["age"]["kind"] == "continuous"
    train = labels["label"]["groups"][0]
    assert (train["site"], train["split"], train["counts"]) == ("site-a", "train", {"0": 3, "1": 3})


def test_usage_errors_exit_2(tmp_path: Path, capsys) -> None:
    assert main(["validate", str(tmp_path / "absent.csv")]) == 2
    assert "manifest not found" in capsys.readouterr().err
    no_subject = write_manifest(tmp_path, lambda f: f.drop(columns=["subject_id"]), name="bad.csv")
    assert main(["validate", str(no_subject)]) == 2
    assert "missing column(s) 'subject_id'" in capsys.readouterr().err
    assert main(["validate", str(write_manifest(tmp_path)), "--labels", "nope"]) == 2
    assert "missing column(s) 'nope'" in capsys.readouterr().err


def test_subprocess_problem_report_has_no_traceback(tmp_path: Path) -> None:
    manifest = write_manifest(tmp_path)
    (tmp_path / "images" / "img05.nii.gz").write_bytes(b"")
    done = subprocess.run([sys.executable, "-m", "medprobe.cli.main", "validate", str(manifest), "--check-read"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and "Traceback" not in done.stderr
    assert "file is empty (0 bytes)" in done.stdout


def _four_d(frame: pd.DataFrame, tmp_path: Path) -> pd.DataFrame:
    write_volume(tmp_path / "images" / "img04.nii.gz", np.zeros((3, 3, 3, 6), dtype=np.float32))
    return frame


def test_check_read_without_a_spec_reports_4d_series_a_job_would_skip(tmp_path: Path, capsys) -> None:
    manifest = write_manifest(tmp_path, lambda f: _four_d(f, tmp_path))
    assert main(["validate", str(manifest)]) == 0  # existence only: a 4D file looks fine
    capsys.readouterr()
    assert main(["validate", str(manifest), "--check-read"]) == 3
    out = capsys.readouterr().out
    assert ("will be skipped unless data.preprocessing.volume_index or reduce_4d is set (4D series, 6 volumes"
            in out and "img04.nii.gz (row(s) 6)" in out)
    assert "skips predicted with the default preprocessing" in out


def test_check_read_with_a_spec_applies_its_preprocessing(tmp_path: Path, capsys, write_spec) -> None:
    manifest = write_manifest(tmp_path, lambda f: _four_d(f, tmp_path))
    skipping = write_spec(manifest, "skip.yaml")
    keeping = write_spec(manifest, "keep.yaml", data={"manifest": str(manifest), "modality": "mri",
                                                      "preprocessing": {"volume_index": -1}})
    assert main(["validate", str(manifest), "--check-read", "--spec", str(skipping)]) == 3
    out = capsys.readouterr().out
    assert "will be skipped: 4D series with 6 volumes on the 4th axis" in out and str(skipping) in out
    assert main(["validate", "--check-read", "--spec", str(keeping)]) == 0  # the spec's own manifest
    out = capsys.readouterr().out
    assert f"manifest  {manifest}" in out and out.rstrip().endswith("clean: no problems, 0 warning(s)")
    bad = write_spec(manifest, "bad.yaml", tasks=[{"name": "t", "target": "absent"}])
    assert main(["validate", "--spec", str(bad)]) == 2
    assert "missing column(s) 'absent'" in capsys.readouterr().err
    assert main(["validate"]) == 2
    assert "needs a MANIFEST, or --spec SPEC" in capsys.readouterr().err


def test_labels_that_are_the_same_number_are_one_class_with_a_warning(tmp_path: Path, capsys) -> None:
    """A Parquet string column (or a CSV column with one non-numeric value) keeps the spellings apart."""
    frame = pd.read_csv(write_manifest(tmp_path))
    spellings = ["1", "1.0", "01", " 1 ", "1"]
    frame["label"] = [spellings[i // 2] if i % 2 else "0" for i in range(len(frame))]
    manifest = tmp_path / "manifest.parquet"
    frame.to_parquet(manifest)
    assert main(["validate", str(manifest)]) == 0
    out = capsys.readouterr().out
    assert "label 'label': categorical, 2 class(es)" in out
    assert "labels ' 1 ', '01', '1' and '1.0' in column 'label' are the same number; treated as one class" in out


def test_a_target_whose_square_overflows_is_a_warning(tmp_path: Path, capsys) -> None:
    def huge(frame: pd.DataFrame) -> pd.DataFrame:
        frame.loc[2, "age"] = 1e308
        return frame

    assert main(["validate", str(write_manifest(tmp_path, huge))]) == 0
    assert "label 'age': 1 row(s) infinite or beyond ±1e+150; a regression task leaves them out" in \
        capsys.readouterr().out
