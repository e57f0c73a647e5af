from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from PIL import Image

from medprobe.errors import ReadError
from medprobe.io import MedicalImage, read_image
from medprobe.pipeline_spec import DataSpec
from medprobe.preprocess import InputSpec, PreprocessChain
from medprobe.preprocess.tensor_steps import pad_to_square
from tests.conftest import write_volume

VIT = InputSpec(2, (28, 28), 3)


def _data(**preprocessing: object) -> DataSpec:
    return DataSpec(manifest=Path("m.csv"), modality="mri", preprocessing=preprocessing)


def test_left_marker_stays_left_whatever_the_storage_orientation(tmp_path: Path) -> None:
    """A bright marker on the patient's left must land on the same picture side for RAS and LPS storage."""
    ras = np.zeros((16, 16, 12), np.float32)
    ras[1:4, 6:10, 5:7] = 1000  # low x in RAS = patient's left
    ras_path = write_volume(tmp_path / "ras.nii.gz", ras, np.diag([2.0, 2.0, 2.0, 1.0]))
    lps = ras[::-1, ::-1, :]
    lps_affine = np.diag([-2.0, -2.0, 2.0, 1.0])
    lps_affine[:3, 3] = [30.0, 30.0, 0.0]  # same world positions as the RAS file
    lps_path = write_volume(tmp_path / "lps.nii.gz", np.ascontiguousarray(lps), lps_affine)
    chain = PreprocessChain(_data(volume_to_2d={"n": 1}), InputSpec(2, None, 1, None, None))
    a = chain(read_image(ras_path))
    b = chain(read_image(lps_path))
    torch.testing.assert_close(a, b)
    columns_with_marker = torch.nonzero(a[0, 0].amax(dim=0) > 0.5).flatten()  # the model's (C, rows, columns)
    assert columns_with_marker.max() < 8  # picture's left half (x = column)
    assert nib.aff2axcodes(lps_affine) == ("L", "P", "S")


def test_slices_orthogonal_and_model_input(tmp_path: Path) -> None:
    image = read_image(write_volume(tmp_path / "v.nii.gz", np.random.default_rng(0).random((20, 24, 16))))
    slices = PreprocessChain(_data(volume_to_2d={"n": 5}), VIT)(image)
    assert slices.shape == (5, 3, 28, 28)
    planes = PreprocessChain(_data(volume_to_2d={"strategy": "orthogonal"}), VIT)(image)
    assert planes.shape == (3, 3, 28, 28)
    native = PreprocessChain(_data(), InputSpec(None, None, 1, None, None))(image)
    assert native.shape == (1, 1, 20, 24, 16)


def test_slice_positions_cover_the_central_extent() -> None:
    from medprobe.pipeline_spec import VolumeTo2D
    from medprobe.preprocess.views import VolumeSlicer

    assert VolumeSlicer(VolumeTo2D(n=3, extent=0.5)).positions(41) == [10, 20, 30]
    assert VolumeSlicer(VolumeTo2D(n=1)).positions(41) == [20]
    assert all(isinstance(p, int) for p in VolumeSlicer(VolumeTo2D(n=4)).positions(17))


def test_ct_window_and_imagenet_normalisation() -> None:
    hu = np.array([[-1000, 0], [40, 80], [200, 3000]], np.float32).T[None]  # (1, 2, 3)
    image = MedicalImage(hu, np.eye(4), "ct")
    data = DataSpec(manifest=Path("m.csv"), modality="ct", preprocessing={"inputs": "any"})  # a 2D CT image
    out = PreprocessChain(data, InputSpec(2, None, 1, None, None))(image)
    # the array is (x, y) = (2 columns, 3 rows); the model sees (rows, columns)
    np.testing.assert_allclose(out[0, 0].numpy(), np.array([[0, 0.5, 1.0], [0, 1.0, 1.0]]).T, atol=1e-6)
    normalised = PreprocessChain(data, InputSpec(2, None, 3, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)))(image)
    np.testing.assert_allclose(normalised[0, 1].numpy(), (out[0, 0].numpy() - 0.5) / 0.25, atol=1e-6)


def test_a_picture_reaches_a_2d_model_as_it_is_displayed(tmp_path: Path) -> None:
    """A PNG's top rows are the model input's top rows: (C, rows, columns), not medprobe's (x, y) array order."""
    photo = np.zeros((30, 40, 3), np.uint8)
    photo[:5] = 255  # a band along the top
    photo[:, -4:, 1] = 200  # and a green strip at the right
    Image.fromarray(photo).save(tmp_path / "p.png")
    data = DataSpec(manifest=Path("m.csv"), modality="photo")
    out = PreprocessChain(data, InputSpec(2, None, 3, None, None))(read_image(tmp_path / "p.png"))[0]
    torch.testing.assert_close(out, torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1))


def test_pad_to_square_keeps_the_whole_field_of_view() -> None:
    view = torch.arange(12, dtype=torch.float32).reshape(1, 4, 3) + 1
    padded = pad_to_square(view)
    assert padded.shape == (1, 4, 4)
    assert torch.equal(padded[:, :, :3], view) or torch.equal(padded[:, :, 1:], view)


def test_description_changes_with_the_options() -> None:
    a = PreprocessChain(_data(), VIT).digest_text()
    b = PreprocessChain(_data(volume_to_2d={"n": 5}), VIT).digest_text()
    c = PreprocessChain(_data(spacing=(1.0, 1.0, 1.0)), VIT).digest_text()
    assert len({a, b, c}) == 3


def test_3d_encoder_refuses_2d_images() -> None:
    chain = PreprocessChain(_data(), InputSpec(3, (8, 8, 8), 1, None, None))
    with pytest.raises(ReadError, match="needs a 3D volume"):
        chain(MedicalImage(np.zeros((1, 4, 4), np.float32), np.eye(4)), source="x.png")
