"""Manifest checks as pure functions: each problem class, label types, warnings, and a clean manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medprobe.pipeline_spec import load_manifest
from medprobe.pipeline_spec.validation import (
    check_files,
    find_duplicate_paths,
    find_leakage,
    label_columns,
    subject_hash,
    summarize_label,
    validate_manifest,
)
from medprobe.preprocess.options import Preprocessing, PreprocessOptions
from tests.conftest import write_volume

SALT = b"unit-test-salt"


def manifest_with(tmp_path: Path, rows: list[dict], write: bool = True) -> pd.DataFrame:
    for row in rows:
        if write and not (tmp_path / row["path"]).exists():
            write_volume(tmp_path / row["path"], np.ones((3, 3, 3), dtype=np.float32))
    path = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return load_manifest(path)


def clean_rows() -> list[dict]:
    rows = []
    for i in range(8):
        rows.append({"path": f"img{i}.nii.gz", "subject_id": f"P{i:03d}", "site": "a",
                     "split": "test" if i >= 6 else "train", "label": i % 2, "age": 30.5 + 3 * i})
    return rows


def test_a_clean_manifest_has_no_problems_or_warnings(tmp_path: Path) -> None:
    report = validate_manifest(manifest_with(tmp_path, clean_rows()), "m.csv", salt=SALT)
    assert report.clean and report.problems == [] and report.warnings == []
    assert (report.rows, report.subjects, report.sites, report.splits) == (8, 8, ["a"], ["train", "test"])
    assert [(g.split, g.rows, g.subjects) for g in report.groups] == [("train", 6, 6), ("test", 2, 2)]
    json.dumps(report.to_dict(), allow_nan=False)


def test_missing_and_empty_files_are_problems_with_row_numbers(tmp_path: Path) -> None:
    table = manifest_with(tmp_path, clean_rows())
    (tmp_path / "img2.nii.gz").unlink()
    (tmp_path / "img3.nii.gz").write_bytes(b"")
    issues = check_files(table)
    assert [(Path(i.path).name, i.rows, i.reason) for i in issues] == [
        ("img2.nii.gz", [4], "file not found"), ("img3.nii.gz", [5], "file is empty (0 bytes)")]
    report = validate_manifest(table, salt=SALT)
    assert not report.clean and len(report.problems) == 2
    assert sum(g.file_issues for g in report.groups) == 2


def test_check_read_reports_why_a_file_is_unreadable(tmp_path: Path) -> None:
    table = manifest_with(tmp_path, clean_rows())
    (tmp_path / "img1.nii.gz").write_text("not a volume")
    assert check_files(table) == []
    (issue,) = check_files(table, check_read=True)
    assert issue.rows == [3] and issue.reason.startswith("unreadable (not a readable NIfTI")


def test_duplicate_paths_are_found_after_normalising(tmp_path: Path) -> None:
    rows = clean_rows()
    rows[5]["path"] = "sub/../img0.nii.gz"
    (duplicate,) = find_duplicate_paths(manifest_with(tmp_path, rows))
    assert Path(duplicate.path).name == "img0.nii.gz" and duplicate.rows == [2, 7]


def test_leakage_counts_subjects_and_splits_with_hashes_only(tmp_path: Path) -> None:
    rows = clean_rows()
    rows[6]["subject_id"] = "P000"  # P000: train + test
    rows[7]["subject_id"] = "P001"
    rows.append({**rows[2], "path": "extra.nii.gz", "split": "val"})  # P002: train + val
    (leak,) = find_leakage(manifest_with(tmp_path, rows), SALT)
    assert leak.site == "a" and leak.subjects == 3
    assert leak.combinations == {"train+test": 2, "train+val": 1}
    assert sorted(leak.hashes) == sorted(subject_hash(SALT, s) for s in ("P000", "P001", "P002"))
    assert not any(raw in " ".join(leak.hashes) for raw in ("P000", "P001", "P002"))


def test_leakage_is_per_site_and_ignores_rows_without_a_split(tmp_path: Path) -> None:
    rows = clean_rows()
    rows[6].update(subject_id="P000", site="b")  # same local ID at another site: another person
    rows[7].update(subject_id="P001", split=None)
    assert find_leakage(manifest_with(tmp_path, rows), SALT) == []


def test_label_types_and_counts_per_site_and_split(tmp_path: Path) -> None:
    rows = clean_rows()
    rows[0]["label"] = None
    table = manifest_with(tmp_path, rows)
    assert label_columns(table) == ["label", "age"] and label_columns(table, ["age"]) == ["age"]
    label = summarize_label(table, "label")
    assert label.kind == "categorical" and label.classes == ["0", "1"]
    train, test = label.groups
    assert (train.split, train.counts, train.missing) == ("train", {"0": 2, "1": 3}, 1)
    assert test.counts == {"0": 1, "1": 1}
    age = summarize_label(table, "age")
    assert age.kind == "continuous"
    assert age.groups[1].stats == {"count": 2, "mean": 50.0, "min": 48.5, "max": 51.5}


def test_many_integer_values_are_continuous_and_few_are_classes(tmp_path: Path) -> None:
    table = pd.DataFrame({"path": ["x"] * 12, "subject_id": [f"S{i}" for i in range(12)],
                          "score": range(12), "grade": [i % 3 for i in range(12)], "sex": ["F", "M"] * 6})
    kinds = {c: summarize_label(table, c).kind for c in ("score", "grade", "sex")}
    assert kinds == {"score": "continuous", "grade": "categorical", "sex": "categorical"}


def test_a_split_missing_a_class_and_a_singleton_class_are_warnings(tmp_path: Path) -> None:
    rows = clean_rows()
    for row in rows:
        row["label"] = "healthy" if row["split"] == "train" else "tumour"
    rows[0]["label"] = "tumour"
    rows[1]["label"] = "rare"
    report = validate_manifest(manifest_with(tmp_path, rows), salt=SALT, labels=["label"])
    assert report.clean  # warnings do not make a manifest unusable
    warnings = "\n".join(report.warnings)
    assert "split 'test' has no rows of classes 'healthy', 'rare'" in warnings
    assert "class 'rare' has fewer than 2 subjects" in warnings


def test_an_empty_label_column_is_a_warning(tmp_path: Path) -> None:
    rows = clean_rows()
    for row in rows:
        row["note"] = None
    report = validate_manifest(manifest_with(tmp_path, rows), salt=SALT)
    assert report.warnings == ["label 'note' has no values"]


def test_leaking_subjects_are_shown_with_their_own_ids_and_rows(tmp_path: Path) -> None:
    rows = clean_rows()
    rows[6]["subject_id"] = "P000"  # rows 2 (train) and 8 (test)
    rows.append({**rows[2], "path": "extra.nii.gz", "split": "val"})  # P002: rows 4 and 10
    report = validate_manifest(manifest_with(tmp_path, rows), salt=SALT)
    (leak,) = report.leakage
    assert [(d.subject_id, d.splits, d.rows) for d in leak.details] == [
        ("P000", "train+test", [2, 8]), ("P002", "train+val", [4, 10])]
    assert leak.details[0].pseudonym == subject_hash(SALT, "P000")
    assert (f"subject 'P000' ({subject_hash(SALT, 'P000')}) at site 'a' is in train+test: rows 2, 8"
            in report.problems)
    json.dumps(report.to_dict(), allow_nan=False)


def _series_rows(tmp_path: Path) -> list[dict]:
    from pydicom.uid import generate_uid

    from tests.dicom_writers import write_ct_series

    first, second = generate_uid(), generate_uid()
    write_ct_series(tmp_path / "study" / "A", np.zeros((4, 4, 3), np.float32), series_uid=first)
    write_ct_series(tmp_path / "study" / "B", np.zeros((4, 4, 2), np.float32), series_uid=second)
    return [{"path": "study", "subject_id": "P1", "series_uid": first, "label": 0},
            {"path": "study", "subject_id": "P2", "series_uid": second, "label": 1}]


def test_series_uid_rows_are_read_and_deduplicated_per_series(tmp_path: Path) -> None:
    rows = _series_rows(tmp_path)
    table = manifest_with(tmp_path, rows, write=False)
    assert find_duplicate_paths(table) == [] and check_files(table, check_read=True) == []
    report = validate_manifest(table, salt=SALT, check_read=True)
    assert report.clean and [label.column for label in report.labels] == ["label"]
    rows.append({**rows[0], "subject_id": "P3"})
    rows.append({**rows[0], "subject_id": "P4", "series_uid": "1.2.3.4.5"})
    table = manifest_with(tmp_path, rows, write=False)
    (duplicate,) = find_duplicate_paths(table)
    assert duplicate.rows == [2, 4]
    (issue,) = check_files(table, check_read=True)
    assert issue.rows == [5]
    assert "none of the 2 DICOM series in the folder has the manifest's series_uid" in issue.reason
    assert "1.2.3.4.5" not in issue.reason
    without = manifest_with(tmp_path, [{k: v for k, v in r.items() if k != "series_uid"} for r in rows[:1]], False)
    (issue,) = check_files(without, check_read=True)
    assert "Add a series_uid column" in issue.reason


def test_check_read_predicts_what_the_job_skips_for_4d_series(tmp_path: Path) -> None:
    rows = clean_rows()
    write_volume(tmp_path / rows[1]["path"], np.ones((3, 3, 3, 4), dtype=np.float32))
    table = manifest_with(tmp_path, rows)
    assert check_files(table) == []  # without reading, a 4D file looks like any other
    (issue,) = check_files(table, check_read=True)
    assert issue.rows == [3] and issue.reason.startswith(
        "will be skipped unless data.preprocessing.volume_index or reduce_4d is set (4D series, 4 volumes")
    (issue,) = check_files(table, check_read=True, data=_mri())
    assert issue.reason.startswith("will be skipped: 4D series with 4 volumes on the 4th axis")
    (issue,) = check_files(table, check_read=True, data=_mri(volume_index=4))
    assert issue.reason == "will be skipped: data.preprocessing.volume_index is 4 but this 4D series holds 4 volumes"
    assert check_files(table, check_read=True, data=_mri(volume_index=-1)) == []
    assert check_files(table, check_read=True, data=_mri(reduce_4d="mean")) == []


def _mri(**preprocessing: Any) -> PreprocessOptions:
    """An MRI job's data options with these preprocessing values, its volumes of any size accepted."""
    return PreprocessOptions(modality="mri", preprocessing=Preprocessing(size=(8, 8, 8), **preprocessing))
