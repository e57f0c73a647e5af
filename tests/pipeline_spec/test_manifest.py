from pathlib import Path

import pandas as pd
import pytest

from medprobe.errors import ManifestError
from medprobe.pipeline_spec import load_manifest


def test_relative_paths_and_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"path": ["a.nii.gz", "/abs/b.nii.gz"], "subject_id": [1, 2], "y": [0, 1]})
    frame.to_parquet(tmp_path / "m.parquet")
    loaded = load_manifest(tmp_path / "m.parquet", ["y"])
    assert loaded["path"].tolist() == [str(tmp_path / "a.nii.gz"), "/abs/b.nii.gz"]
    assert loaded["subject_id"].tolist() == ["1", "2"]


@pytest.mark.parametrize(
    ("frame", "labels", "message"),
    [
        (pd.DataFrame({"path": ["a"], "y": [1]}), ["y"], "missing column(s) 'subject_id'"),
        (pd.DataFrame({"path": ["a"], "subject_id": ["s"]}), ["age"], "missing column(s) 'age'"),
        (pd.DataFrame({"path": ["a", ""], "subject_id": ["s", "t"]}), [], "empty 'path' in row(s) 3"),
        (pd.DataFrame({"path": ["a"], "subject_id": ["s"], "split": ["training"]}), [],
         "unknown value(s) ['training']"),
        (pd.DataFrame({"path": [], "subject_id": []}), [], "no rows"),
    ],
)
def test_bad_manifests_are_explained(tmp_path: Path, frame: pd.DataFrame, labels: list[str], message: str) -> None:
    frame.to_csv(tmp_path / "m.csv", index=False)
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "m.csv", labels)
    assert message in str(caught.value)


def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="manifest not found"):
        load_manifest(tmp_path / "none.csv")
    (tmp_path / "m.xlsx").write_text("x")
    with pytest.raises(ManifestError, match=r"\.csv, \.tsv or \.parquet"):
        load_manifest(tmp_path / "m.xlsx")


def test_series_uid_is_text_with_blanks_as_none(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("path,subject_id,series_uid\nstudy,1,1.2\nstudy,1, 1.2.840.10008.5 \nx.nii,2,\n")
    loaded = load_manifest(tmp_path / "m.csv")
    assert loaded["series_uid"].tolist() == ["1.2", "1.2.840.10008.5", None]  # "1.2" not read as a float
    pd.DataFrame({"path": ["a"], "subject_id": ["s"], "series_uid": ["1.3.6"]}).to_parquet(tmp_path / "m.parquet")
    assert load_manifest(tmp_path / "m.parquet")["series_uid"].tolist() == ["1.3.6"]


def test_malformed_series_uids_name_rows_but_never_values(tmp_path: Path) -> None:
    uids = ["1.2.3", "1.2.3.PATIENT", "1." + "2" * 70, "1..2"]
    pd.DataFrame({"path": list("abcd"), "subject_id": list("abcd"), "series_uid": uids}).to_csv(
        tmp_path / "m.csv", index=False)
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "m.csv")
    message = str(caught.value)
    assert "column 'series_uid' holds values that are not DICOM UIDs" in message and "row(s) 3, 4, 5" in message
    assert "PATIENT" not in message and "222" not in message
