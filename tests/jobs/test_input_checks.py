"""An MRI job given what is not an MRI volume: real DICOM files shipped with pydicom (a CT slice, an MR slice, an
RT dose grid), a 4×5×7-voxel volume, and eight byte-identical images under eight subjects across two splits. Each
foreign input is skipped with its own reason, the job goes on, `validate` reports the same, and no copy of the
duplicated image is embedded in both splits."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydicom.data import get_testdata_file

from medprobe.cli.main import main
from medprobe.embed.table import read_table
from medprobe.exit_codes import EXIT_SKIPPED
from medprobe.preprocess.input_checks import InputCheck
from medprobe.preprocess.input_spec import InputSpec
from medprobe.preprocess.options import PreprocessOptions
from tests.conftest import blob_volume, write_volume

pytestmark = pytest.mark.slow(seconds=10)

# The 64×64 MR slice meets the job's 3D preprocessing.size first ('wrong-dimensions'); `validate`, which knows no
# model, and a job without a 3D size call it a 'single-slice'.
FOREIGN = {"CT_small.dcm": "modality-mismatch", "MR_small.dcm": "wrong-dimensions", "rtdose.dcm": "derived-object"}


def _manifest(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(16):
        path = write_volume(tmp_path / "data" / f"vol{i:02d}.nii.gz", blob_volume(rng, bool(i % 2)))
        rows.append({"path": str(path), "subject_id": f"S{i:02d}", "label": i % 2,
                     "split": "test" if i % 4 == 0 else "train"})
    original = write_volume(tmp_path / "data" / "copy0.nii.gz", blob_volume(rng, True))
    for i in range(8):  # one scan exported under eight subject IDs, four in each split
        copy = original if i == 0 else Path(shutil.copy(original, tmp_path / "data" / f"copy{i}.nii.gz"))
        rows.append({"path": str(copy), "subject_id": f"C{i}", "label": 1, "split": "train" if i < 4 else "test"})
    tiny = write_volume(tmp_path / "data" / "tiny.nii.gz", rng.normal(size=(4, 5, 7)).astype(np.float32))
    rows.append({"path": str(tiny), "subject_id": "T0", "label": 0, "split": "train"})
    for n, name in enumerate(FOREIGN):
        rows.append({"path": get_testdata_file(name), "subject_id": f"F{n}", "label": n % 2, "split": "train"})
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def test_an_mri_job_skips_each_foreign_input_with_its_reason(tmp_path: Path, write_spec, capsys) -> None:
    manifest = _manifest(tmp_path)
    # Volumes brought to 80³: the 4×5×7 one would be stretched 20-fold along its first axis.
    spec = write_spec(manifest, data={"manifest": str(manifest), "modality": "mri",
                                      "preprocessing": {"size": [80, 80, 80]}},
                      protocols={"linear": {"bootstrap": 0}})
    assert main(["run", str(spec), "--no-progress"]) == EXIT_SKIPPED
    printed = capsys.readouterr().out
    local = pd.read_csv(next((tmp_path / "work").rglob("skipped-files.csv")))
    reasons = {Path(path).name: category for path, category in zip(local["path"], local["category"], strict=True)}
    assert {name: reasons.get(name) for name in FOREIGN} == FOREIGN
    assert reasons["tiny.nii.gz"] == "too-small"
    # The duplicated scan: its test-split copies refused, its training copies kept; the rest embedded.
    assert {name for name, category in reasons.items() if category == "duplicate-image"} == {
        f"copy{i}.nii.gz" for i in range(4, 8)}
    assert len(reasons) == len(FOREIGN) + 1 + 4
    assert "refused as patient leakage" in printed and "lesion" in printed
    frame, _, _ = read_table(tmp_path / "work" / "embeddings" / "handcrafted.parquet")
    assert len(frame) == 16 + 4 and (frame["split"] == "test").sum() == 4  # the volumes' test rows, no copy
    public = next((tmp_path / "work").rglob("quarantine.csv")).read_text()
    assert "CT_small" not in public and "rtdose" not in public  # file names stay in the local-only log


def test_validate_reports_the_same_inputs_and_the_identical_images(tmp_path: Path, write_spec, capsys) -> None:
    manifest = _manifest(tmp_path)
    spec = write_spec(manifest)
    assert main(["validate", "--spec", str(spec), "--check-read", "--json"]) == EXIT_SKIPPED
    report = json.loads(capsys.readouterr().out)
    reasons = {Path(issue["path"]).name: issue["reason"] for issue in report["file_issues"]}
    assert reasons["CT_small.dcm"].startswith("will be skipped (modality-mismatch): DICOM Modality CT")
    assert reasons["MR_small.dcm"].startswith("will be skipped (single-slice)")
    assert reasons["rtdose.dcm"].startswith("will be skipped (derived-object): a DICOM RTDOSE object")
    (identical,) = report["identical"]
    assert identical["subjects"] == 8 and identical["splits"] == "train+test" and len(identical["rows"]) == 8
    assert any(line.startswith("8 pixel-identical images under 8 different subjects, in different splits")
               for line in report["problems"])


def test_the_size_check_measures_the_axes_a_two_dimensional_model_sees() -> None:
    from medprobe.errors import ReadError
    from medprobe.io.image import MedicalImage

    check = InputCheck(PreprocessOptions(modality="mri"), InputSpec())  # 224 × 224 slices along the axial axis
    thin = MedicalImage(np.zeros((1, 32, 32, 3), np.float32), np.eye(4))  # 3 axial slices: not stretched
    check.size(thin)
    with pytest.raises(ReadError) as refused:
        check.size(MedicalImage(np.zeros((1, 13, 64, 40), np.float32), np.eye(4)))  # 13 × 16 < 224
    assert refused.value.category == "too-small"
    photo = InputCheck(PreprocessOptions(modality="photo"), InputSpec())
    photo(MedicalImage(np.zeros((3, 64, 64), np.float32), np.eye(4)))  # a 2D image where none are volumes


def test_a_two_dimensional_model_in_an_mri_job_refuses_a_real_mr_slice_as_a_single_slice() -> None:
    from medprobe.errors import ReadError
    from medprobe.io import read_image
    from medprobe.pipeline_spec import DataSpec
    from medprobe.preprocess import PreprocessChain

    chain = PreprocessChain(DataSpec(manifest=Path("m.csv"), modality="mri"), InputSpec())
    with pytest.raises(ReadError) as refused:
        chain(read_image(get_testdata_file("MR_small.dcm"), "mri"))
    assert refused.value.category == "single-slice"
    anything = PreprocessChain(DataSpec(manifest=Path("m.csv"), modality="mri", preprocessing={"inputs": "any"}),
                               InputSpec())
    assert anything(read_image(get_testdata_file("MR_small.dcm"), "mri")).shape == (1, 3, 224, 224)
