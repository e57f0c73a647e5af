"""DICOM series: indexing a folder, stacking along the normal, flags, refusals, left–right, privacy."""

import logging
import math
import re
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import BasicTextSRStorage, generate_uid

from medprobe.errors import ReadError
from medprobe.io import DicomSeries, index_folder, load_series, read_image
from tests.dicom_writers import write_ct_series, write_slice

DICOMDIR_TESTS = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests"


def ct_volume(shape: tuple[int, int, int] = (16, 16, 12)) -> np.ndarray:
    x, y, z = np.meshgrid(*(np.arange(s) for s in shape), indexing="ij")
    return (2 * (x + 16 * y) + 100 * z - 600).astype(np.float32)  # even HU: exact under slope 2


def test_series_reassembles_by_position_with_per_slice_rescale(tmp_path: Path) -> None:
    hu = ct_volume()
    folder = write_ct_series(tmp_path / "ct", hu)
    (series,) = index_folder(folder)
    assert isinstance(series, DicomSeries)
    assert series.n_slices == 12 and series.modality == "ct" and series.warnings == []
    assert re.fullmatch(r"[0-9a-f]{12}", series.key)
    image = load_series(series)
    assert image.array.shape == (1, 16, 16, 12)
    np.testing.assert_array_equal(image.array[0], hu)
    assert image.spacing == pytest.approx((0.6, 0.8, 2.5))
    # LPS (x0, y0, z) = (-20, -15, -10) → RAS (20, 15, -10); columns along −x (towards L), rows along −y.
    np.testing.assert_allclose(image.affine, [[-0.6, 0, 0, 20], [0, -0.8, 0, 15], [0, 0, 2.5, -10], [0, 0, 0, 1]])
    assert image.orientation == "LPS"
    assert image.metadata["slice_count"] == 12 and "per slice" in image.metadata["rescale_applied"]
    again = read_image(folder)  # one series in the folder: read_image loads it
    np.testing.assert_array_equal(again.array, image.array)
    assert index_folder(folder)[0].key == series.key  # stable across runs


def test_missing_slice_is_flagged_but_loaded(tmp_path: Path) -> None:
    (series,) = index_folder(write_ct_series(tmp_path / "ct", ct_volume(), skip=(5,)))
    assert series.n_slices == 11
    assert any(w.startswith("missing slices: 1 gap") for w in series.warnings)
    image = load_series(series)
    assert image.array.shape[-1] == 11 and image.spacing[2] == pytest.approx(2.5)
    assert "missing slices" in image.metadata["warnings"]


def test_non_uniform_spacing_and_duplicates_are_flagged(tmp_path: Path) -> None:
    hu = ct_volume((8, 8, 6))
    folder = write_ct_series(tmp_path / "ct", hu)
    uid = pydicom.dcmread(next(folder.iterdir())).SeriesInstanceUID
    write_slice(folder / "dup.dcm", np.zeros((8, 8), np.int16), (-20.0, -15.0, -10.0), uid, instance=99)
    write_slice(folder / "odd.dcm", np.zeros((8, 8), np.int16), (-20.0, -15.0, 5.0 + 0.4), uid, instance=98)
    (series,) = index_folder(folder)
    assert any("duplicate positions: 1 slice(s) dropped" in w for w in series.warnings)
    assert any(w.startswith("non-uniform spacing") for w in series.warnings)
    image = load_series(series)
    assert image.array.shape[-1] == 7
    np.testing.assert_array_equal(image.array[0, ..., 0], hu[..., 0])  # kept the lowest InstanceNumber


def test_every_position_twice_is_refused_as_interleaved_volumes(tmp_path: Path) -> None:
    hu = ct_volume((8, 8, 4))
    uid = generate_uid()
    write_ct_series(tmp_path / "echo", hu, series_uid=uid, seed=1)
    write_ct_series(tmp_path / "echo" / "second", hu, series_uid=uid, seed=2)
    (series,) = index_folder(tmp_path / "echo")
    assert "every slice position holds 2 slices" in series.problem
    with pytest.raises(ReadError, match="multi-echo"):
        load_series(series)


def test_gantry_tilt_is_flagged_and_the_affine_follows_positions(tmp_path: Path) -> None:
    (series,) = index_folder(write_ct_series(tmp_path / "ct", ct_volume(), tilt_degrees=15.0))
    assert any(w.startswith("gantry tilt: slices advance 15.0°") for w in series.warnings)
    image = load_series(series)
    step = 2.5 * math.tan(math.radians(15.0))
    np.testing.assert_allclose(image.affine[:3, 2], [0.0, -step, 2.5], atol=1e-6)  # LPS +y → RAS −y


def test_two_series_in_one_folder_are_listed_and_refused(tmp_path: Path) -> None:
    write_ct_series(tmp_path / "study" / "a", ct_volume((8, 8, 5)), seed=1)
    write_ct_series(tmp_path / "study" / "b", ct_volume((8, 8, 3)), seed=2)
    found = index_folder(tmp_path / "study")
    assert sorted(s.n_slices for s in found) == [3, 5]
    with pytest.raises(ReadError) as caught:
        read_image(tmp_path / "study")
    reason = caught.value.reason
    assert reason.startswith("2 DICOM series in the folder")
    assert all(f"{s.key} ({s.n_slices} slices, ct)" in reason for s in found)
    assert "one series folder" in reason and "medprobe inspect FOLDER" in reason
    np.testing.assert_array_equal(read_image(tmp_path / "study" / "a").array[0], ct_volume((8, 8, 5)))


def test_mixed_orientation_splits_and_mixed_sizes_refuse(tmp_path: Path) -> None:
    uid = generate_uid()
    write_ct_series(tmp_path / "s", ct_volume((8, 8, 4)), series_uid=uid)
    write_slice(tmp_path / "s" / "scout.dcm", np.zeros((8, 8), np.int16), (0.0, 0.0, 0.0), uid,
                orientation=(1.0, 0.0, 0.0, 0.0, 0.0, -1.0))
    write_slice(tmp_path / "s" / "small.dcm", np.zeros((4, 4), np.int16), (-20.0, -15.0, 20.0), uid)
    groups = index_folder(tmp_path / "s")
    assert len(groups) == 2
    assert all(w.startswith("mixed orientations: the series holds 2") for g in groups for w in g.warnings[:1])
    axial = next(g for g in groups if g.n_slices == 5)
    assert axial.problem.startswith("mixed rows/columns (4 file(s) 8×8, 1 file(s) 4×4)")
    with pytest.raises(ReadError, match="mixed rows/columns"):
        load_series(axial)


def test_non_dicom_and_non_image_files_are_counted_not_fatal(tmp_path: Path) -> None:
    folder = write_ct_series(tmp_path / "ct", ct_volume((8, 8, 3)))
    (folder / "README.txt").write_text("notes")
    (folder / "notes.dcm").write_text("this is not DICOM at all")
    (folder / "empty.dcm").write_bytes(b"")
    shutil.copy(Path(pydicom.__file__).parent / "data/test_files/reportsi.dcm", folder / "report.dcm")
    found = index_folder(folder)
    assert len(found) == 1 and found[0].n_slices == 3
    assert found.skipped["no pixel data (Basic Text SR)"] == 1
    assert found.skipped["not a DICOM file"] == 2
    assert found.skipped["file is empty"] == 1
    assert read_image(folder).array.shape == (1, 8, 8, 3)
    for path in folder.glob("img_*.dcm"):
        path.unlink()
    with pytest.raises(ReadError, match=r"no DICOM image series found; skipped .*no pixel data \(Basic Text SR\)"):
        read_image(folder)


def test_pydicom_dicomdir_folders() -> None:
    whole = index_folder(DICOMDIR_TESTS)
    assert len(whole) > 10
    # TINY_ALPHA: CT headers whose pixels were stripped: one unreadable series with its reason, not dropped
    (stripped,) = [s for s in whole if s.problem]
    assert stripped.problem == ("none of its 50 image file(s) is usable: 50 × no pixel data (CT Image; truncated, "
                                "or pixels stripped?)")
    assert stripped.folder == DICOMDIR_TESTS / "TINY_ALPHA/PT000000/ST000000/SE000000" and len(stripped.files) == 50
    assert whole.skipped == {"no pixel data (DICOMDIR media directory)": 8, "not a DICOM file": 2}
    with pytest.raises(ReadError) as caught:
        read_image(DICOMDIR_TESTS)
    assert caught.value.reason.startswith(f"{len(whole)} DICOM series in the folder") and "15 more" in str(caught.value)
    assert "Add a series_uid column to the manifest" in caught.value.reason
    five = DICOMDIR_TESTS / "98892001" / "CT5N"
    (series,) = index_folder(five)
    image = load_series(series)
    datasets = sorted((pydicom.dcmread(p) for p in five.iterdir()), key=lambda d: float(d.ImagePositionPatient[2]))
    for z, ds in enumerate(datasets):
        expected = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        np.testing.assert_array_equal(image.array[0, ..., z], expected.T)
    (gappy,) = index_folder(DICOMDIR_TESTS / "77654033" / "CT2")
    assert any(w.startswith("missing slices") for w in gappy.warnings)
    with pytest.raises(ReadError, match=r"series \w{12}: none of its 50 image file\(s\) is usable: 50 × no pixel"):
        read_image(DICOMDIR_TESTS / "TINY_ALPHA")


def _marker_volume() -> np.ndarray:
    volume = np.zeros((20, 16, 8), np.float32)
    volume[17, 8, 4] = 1000.0  # x index 17 of 20: the marker's side is decided by each file's geometry
    return volume


def _world_of_marker(image) -> np.ndarray:
    index = np.unravel_index(np.argmax(image.array[0]), image.array.shape[1:])
    return (image.affine @ np.array([*index, 1.0]))[:3]


def _canonical_marker_x(image) -> tuple[int, int]:
    canonical = nib.as_closest_canonical(nib.Nifti1Image(image.array[0], image.affine))
    data = np.asarray(canonical.dataobj)
    return int(np.unravel_index(np.argmax(data), data.shape)[0]), data.shape[0]


def test_left_marker_stays_left_in_nifti_dicom_and_nrrd(tmp_path: Path) -> None:
    volume = _marker_volume()
    # NIfTI, RAS: make x run from right (+) to left (−) so index 17 lies on the patient's left (x < 0).
    affine = np.array([[-2.0, 0, 0, 20.0], [0, 2.0, 0, -16.0], [0, 0, 2.0, -8.0], [0, 0, 0, 1]])
    nib.save(nib.Nifti1Image(volume, affine), str(tmp_path / "v.nii.gz"))
    # DICOM, LPS: axial IOP, columns along +x = towards the patient's left; x(17) = -20 + 17·2 = 14 > 0 (left).
    uid = generate_uid()
    for k in range(volume.shape[2]):
        write_slice(tmp_path / "dcm" / f"{k}.dcm", volume[:, :, k].T.astype(np.int16), (-20.0, -16.0, -8.0 + 2 * k),
                    uid, instance=k + 1, spacing=(2.0, 2.0))
    # NRRD through ITK, LPS with identity direction: index 17 again at LPS x = 14 (left).
    itk = sitk.GetImageFromArray(volume.transpose(2, 1, 0))
    itk.SetSpacing((2.0, 2.0, 2.0))
    itk.SetOrigin((-20.0, -16.0, -8.0))
    sitk.WriteImage(itk, str(tmp_path / "v.nrrd"))
    for source in (tmp_path / "v.nii.gz", tmp_path / "dcm", tmp_path / "v.nrrd"):
        image = read_image(source)
        assert _world_of_marker(image)[0] < 0, f"{source.name}: marker not on the patient's left (RAS x < 0)"
        index, size = _canonical_marker_x(image)  # RAS-canonical: index grows towards the right
        assert index < size // 2, source.name


SECRETS = ("Zebedee", "Quuxworth", "PID-98765", "19450607", "20240229", "Hypothetical", "Strangeglove",
           "Secret knee", "hidden-token-7731", "1.2.826.0.1.3680043.9.7777")


def _identifying(path: Path, uid: str, instance: int, **kwargs: object) -> Path:
    stored = np.arange(64, dtype=np.int16).reshape(8, 8)
    path = write_slice(path, stored, (0.0, 0.0, 2.0 * instance), uid, instance=instance, extra={
        "PatientName": "Quuxworth^Zebedee", "PatientID": "PID-98765-XYZ", "PatientBirthDate": "19450607",
        "StudyDate": "20240229", "StudyInstanceUID": "1.2.826.0.1.3680043.9.7777.1",
        "InstitutionName": "Saint Hypothetical Hospital", "ReferringPhysicianName": "Strangeglove^Dr",
        "StudyDescription": "Secret knee study", **kwargs})
    ds = pydicom.dcmread(path)
    block = ds.private_block(0x0011, "ACME Zebedee", create=True)
    block.add_new(0x01, "LO", "hidden-token-7731")
    ds.save_as(path)
    return path


def test_identifying_values_never_reach_metadata_reasons_or_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, recwarn: pytest.WarningsRecorder
) -> None:
    caplog.set_level(logging.DEBUG)
    uid = "1.2.826.0.1.3680043.9.7777.2"
    good = _identifying(tmp_path / "one" / "a.dcm", uid, 1)
    texts = [repr(read_image(good).metadata)]
    # a series with a gap and a malformed InstanceNumber (pydicom warns quoting it), then mixed sizes
    folder = tmp_path / "series"
    for k in (1, 2, 5):
        _identifying(folder / f"{k}.dcm", uid, k, **({"InstanceNumber": 12345678} if k == 2 else {}))
    bad = folder / "2.dcm"
    content = bad.read_bytes()
    assert content.count(b"12345678") == 1
    bad.write_bytes(content.replace(b"12345678", b"Zebedee9"))  # unquieted, pydicom would warn quoting it
    (series,) = index_folder(folder)
    assert series.warnings
    texts += [repr(series.warnings), series.summary(), repr(read_image(folder).metadata)]
    write_slice(folder / "small.dcm", np.zeros((4, 4), np.int16), (0.0, 0.0, 30.0), uid)
    (refused,) = index_folder(folder)
    texts.append(refused.summary())
    truncated = tmp_path / "t.dcm"
    truncated.write_bytes(good.read_bytes()[:-40])
    report = _identifying(tmp_path / "sr.dcm", uid, 9, SOPClassUID=BasicTextSRStorage)
    ds = pydicom.dcmread(report)
    del ds.PixelData
    ds.save_as(report)
    for path in (folder, truncated, report, tmp_path):
        with pytest.raises(ReadError) as caught:
            read_image(path)
        texts.append(caught.value.reason)
    texts += [record.getMessage() for record in caplog.records] + [str(w.message) for w in recwarn]
    joined = "\n".join(texts)
    assert "no pixel data (Basic Text SR)" in joined and "pixel data is truncated" in joined
    for secret in SECRETS:
        assert secret not in joined
    assert not re.search(r"\d+\.\d+\.\d+\.\d+\.\d+", joined), "something UID-like leaked"
