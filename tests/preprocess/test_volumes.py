"""4D series: the chain's first step picks one volume, averages them, or skips the image with a reason."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from pydantic import ValidationError

from medprobe.errors import ReadError
from medprobe.io import read_image
from medprobe.pipeline_spec import DataSpec, Preprocessing
from medprobe.preprocess import InputSpec, PreprocessChain
from medprobe.preprocess.volumes import volume_problem
from tests.conftest import write_volume

VIT = InputSpec(2, (28, 28), 3)
NATIVE_3D = InputSpec(None, None, 1, None, None)


def _data(**preprocessing: object) -> DataSpec:
    return DataSpec(manifest=Path("m.csv"), modality="mri", preprocessing=preprocessing)


@pytest.fixture
def series(tmp_path: Path) -> tuple[Path, np.ndarray]:
    """A 4D NIfTI of 5 volumes (x, y, z, t), each volume a different level plus noise."""
    rng = np.random.default_rng(0)
    data = (rng.random((12, 10, 8, 5)) + np.arange(5) * 10).astype(np.float32)
    return write_volume(tmp_path / "bold.nii.gz", data), data


def test_a_4d_nifti_is_marked_with_its_volumes(series: tuple[Path, np.ndarray], tmp_path: Path) -> None:
    path, data = series
    image = read_image(path)
    assert image.array.shape == (5, 12, 10, 8) and image.metadata["volumes"] == 5
    np.testing.assert_array_equal(image.array[3], data[..., 3])
    vector = write_volume(tmp_path / "vector.nii.gz", np.ones((4, 4, 4, 1, 3), np.float32))
    assert read_image(vector).channels == 3 and "volumes" not in read_image(vector).metadata
    single = write_volume(tmp_path / "single.nii.gz", np.ones((4, 4, 4, 1), np.float32))
    assert read_image(single).channels == 1 and "volumes" not in read_image(single).metadata


@pytest.mark.parametrize("spec", [VIT, NATIVE_3D])
def test_by_default_a_4d_series_is_skipped_with_the_option_to_set(series, spec: InputSpec) -> None:
    path, _ = series
    with pytest.raises(ReadError) as caught:
        PreprocessChain(_data(), spec)(read_image(path), source="bold.nii.gz")
    assert caught.value.path == "bold.nii.gz"
    assert caught.value.reason.startswith("4D series with 5 volumes on the 4th axis")
    assert "data.preprocessing.volume_index" in caught.value.reason and "reduce_4d" in caught.value.reason


def test_three_volumes_are_no_longer_taken_for_rgb(tmp_path: Path) -> None:
    path = write_volume(tmp_path / "echoes.nii.gz", np.ones((8, 8, 6, 3), np.float32))
    with pytest.raises(ReadError, match="4D series with 3 volumes"):
        PreprocessChain(_data(), VIT)(read_image(path))


@pytest.mark.parametrize("index", [0, 2, -1])
def test_volume_index_embeds_that_volume_as_a_3d_file_would(series, tmp_path: Path, index: int) -> None:
    path, data = series
    alone = write_volume(tmp_path / "alone.nii.gz", np.ascontiguousarray(data[..., index]))
    chain = PreprocessChain(_data(volume_index=index), VIT)
    torch.testing.assert_close(chain(read_image(path)), PreprocessChain(_data(), VIT)(read_image(alone)))


def test_reduce_4d_mean_embeds_the_mean_volume(series, tmp_path: Path) -> None:
    path, data = series
    mean = write_volume(tmp_path / "mean.nii.gz", data.mean(axis=3, dtype=np.float64).astype(np.float32))
    chain = PreprocessChain(_data(reduce_4d="mean"), NATIVE_3D)
    torch.testing.assert_close(chain(read_image(path)), PreprocessChain(_data(), NATIVE_3D)(read_image(mean)))


def test_a_volume_index_beyond_the_series_is_a_read_error(series) -> None:
    path, _ = series
    with pytest.raises(ReadError, match="volume_index is 5 but this 4D series holds 5 volumes"):
        PreprocessChain(_data(volume_index=5), VIT)(read_image(path))
    with pytest.raises(ReadError, match="volume_index is -6"):
        PreprocessChain(_data(volume_index=-6), VIT)(read_image(path))


def test_3d_images_are_untouched_by_the_4d_options(tmp_path: Path) -> None:
    image = read_image(write_volume(tmp_path / "t1.nii.gz", np.random.default_rng(1).random((10, 12, 8))))
    plain = PreprocessChain(_data(), VIT)(image)
    for options in ({"volume_index": 3}, {"reduce_4d": "mean"}):
        torch.testing.assert_close(PreprocessChain(_data(**options), VIT)(image), plain)


def test_the_policy_is_the_first_step_and_part_of_the_digest() -> None:
    described = {name: PreprocessChain(_data(**options), VIT).describe() for name, options in
                 (("skip", {}), ("index", {"volume_index": 0}), ("last", {"volume_index": -1}),
                  ("mean", {"reduce_4d": "mean"}))}
    assert described["skip"][0] == {"step": "volumes_4d", "policy": "skip"}
    assert described["index"][0] == {"step": "volumes_4d", "policy": "index", "volume_index": 0}
    assert described["mean"][0] == {"step": "volumes_4d", "policy": "mean"}
    digests = {PreprocessChain(_data(**o), VIT).digest_text() for o in
               ({}, {"volume_index": 0}, {"volume_index": -1}, {"reduce_4d": "mean"})}
    assert len(digests) == 4


@pytest.mark.parametrize("options", [
    {"volume_index": 0, "reduce_4d": "mean"}, {"volume_index": True}, {"volume_index": "0"}, {"reduce_4d": "max"},
])
def test_4d_options_are_validated(options: dict) -> None:
    with pytest.raises(ValidationError):
        Preprocessing(**options)


def test_volume_problem_is_the_one_policy_check() -> None:
    assert volume_problem(None, None, None) is None
    assert volume_problem(4, 3, None) is None and volume_problem(4, -4, None) is None
    assert volume_problem(4, None, "mean") is None
    assert "4D series with 4 volumes" in (volume_problem(4, None, None) or "")
    assert "holds 4 volumes" in (volume_problem(4, 4, None) or "")


def test_mgh_4d_is_handled_like_nifti(tmp_path: Path) -> None:
    data = np.random.default_rng(2).random((6, 6, 4, 3)).astype(np.float32)
    path = tmp_path / "frames.mgz"
    nib.save(nib.MGHImage(data, np.eye(4)), str(path))
    image = read_image(path)
    assert image.metadata["volumes"] == 3
    out = PreprocessChain(_data(volume_index=1), NATIVE_3D)(image)
    assert out.shape == (1, 1, 6, 6, 4)
