"""preprocessing.size: the whole image/volume to a fixed voxel size, before any 3D→2D views."""

from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from medprobe.errors import ReadError, SpecError
from medprobe.io import MedicalImage
from medprobe.pipeline_spec import DataSpec, Preprocessing
from medprobe.preprocess import InputSpec, PreprocessChain
from medprobe.preprocess.spatial import ToSize

NATIVE_3D = InputSpec(3, None, None, None, None)


def _data(**preprocessing: object) -> DataSpec:
    preprocessing.setdefault("intensity", {"mode": "none"})
    return DataSpec(manifest=Path("m.csv"), modality="mri", preprocessing=preprocessing)


def _volume(shape: tuple[int, ...] = (10, 6, 7), affine: np.ndarray | None = None) -> MedicalImage:
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(1, *shape) + 5
    if affine is None:
        affine = np.diag([2.0, 1.0, 3.0, 1.0])
        affine[:3, 3] = [10.0, -4.0, 7.0]
    return MedicalImage(array, affine)


def _world(affine: np.ndarray, index: tuple[float, ...]) -> np.ndarray:
    padded = list(index) + [0.0] * (3 - len(index))
    return affine[:3, :3] @ np.asarray(padded) + affine[:3, 3]


def test_crop_or_pad_centres_pads_with_the_minimum_and_keeps_world_positions() -> None:
    image = _volume()
    out = ToSize((8, 8, 7), "crop_or_pad")(image)
    assert out.spatial_shape == (8, 8, 7)
    # x: 10 → 8 crops one voxel each side; y: 6 → 8 pads one each side with the image minimum (5).
    np.testing.assert_array_equal(out.array[0, :, 1:7, :], image.array[0, 1:9, :, :])
    assert (out.array[0, :, 0, :] == 5).all() and (out.array[0, :, 7, :] == 5).all()
    # Output voxel (0, 1, 0) is input voxel (1, 0, 0): the same point in the world.
    np.testing.assert_allclose(_world(out.affine, (0, 1, 0)), _world(image.affine, (1, 0, 0)))
    assert out.spacing == image.spacing


def test_resize_keeps_the_field_of_view_in_the_affine() -> None:
    image = _volume()
    out = ToSize((5, 12, 7), "resize")(image)
    assert out.spatial_shape == (5, 12, 7) and out.array.dtype == np.float32
    extent_in = np.asarray(image.spatial_shape) * np.asarray(image.spacing)
    extent_out = np.asarray(out.spatial_shape) * np.asarray(out.spacing)
    np.testing.assert_allclose(extent_out, extent_in)
    assert out.array.min() >= image.array.min() - 1e-4 and out.array.max() <= image.array.max() + 1e-4


def test_volume_size_applies_before_the_views_and_the_model_size_after() -> None:
    data = _data(size=[16, 16, 9], volume_to_2d={"n": 3})
    volume = PreprocessChain(data, NATIVE_3D)(_volume((20, 24, 16)))
    assert volume.shape == (1, 1, 16, 16, 9)
    chain_out = PreprocessChain(data, InputSpec(2, (28, 28), 3, None, None))(_volume((20, 24, 16)))
    assert chain_out.shape == (3, 3, 28, 28)


def test_2d_images_take_a_2d_size() -> None:
    picture = MedicalImage(np.random.default_rng(0).random((3, 40, 30)).astype(np.float32), np.eye(4))
    out = PreprocessChain(_data(size=[32, 32], fit="crop_or_pad", inputs="any"),
                          InputSpec(2, None, 3, None, None))(picture)
    assert out.shape == (1, 3, 32, 32)
    out = PreprocessChain(_data(size=[20, 15], inputs="any"), InputSpec(2, None, 3, None, None))(picture)
    assert out.shape == (1, 3, 15, 20)  # size is (x, y); the model sees (rows = y, columns = x)


@pytest.mark.parametrize(("size", "image"), [
    ([16, 16], _volume()),
    ([16, 16, 16], MedicalImage(np.zeros((1, 8, 8), np.float32), np.eye(4))),
])
def test_size_of_the_wrong_dimension_is_a_read_error_for_that_sample(size: list[int], image: MedicalImage) -> None:
    chain = PreprocessChain(_data(size=size), InputSpec(2, (28, 28), 3, None, None))
    expected = rf"^scan\.x: preprocessing\.size .* {len(size)} values .* {image.spatial_dims}D"
    with pytest.raises(ReadError, match=expected):
        chain(image, source="scan.x")


def test_2d_size_for_a_3d_encoder_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="3 values"):
        PreprocessChain(_data(size=[64, 64]), InputSpec(3, (64, 64, 64), 1, None, None))


def test_size_and_fit_are_part_of_the_description() -> None:
    plain = PreprocessChain(_data(), NATIVE_3D).describe()
    assert [step["step"] for step in plain] == ["volumes_4d", "orientation", "intensity", "model_input"]
    resized = PreprocessChain(_data(size=[8, 8, 8]), NATIVE_3D).describe()
    assert {"step": "size", "size": [8, 8, 8], "fit": "resize", "mode": "trilinear", "anti_aliasing": True} in resized
    digests = {PreprocessChain(_data(**options), NATIVE_3D).digest_text() for options in
               ({}, {"size": [8, 8, 8]}, {"size": [8, 8, 9]}, {"size": [8, 8, 8], "fit": "crop_or_pad"})}
    assert len(digests) == 4


@pytest.mark.parametrize("options", [
    {"size": [1, 2, 3, 4]}, {"size": [8]}, {"size": [0, 8]}, {"size": [8.5, 8]}, {"size": [True, 8]},
    {"fit": "crop_or_pad"}, {"size": [8, 8], "fit": "stretch"},
])
def test_size_options_are_validated(options: dict) -> None:
    with pytest.raises(ValidationError):
        Preprocessing(**options)
