"""Each 3D zoo model's default preprocessing gives what its authors' own transform chain gives, on real files written
by others: nibabel's `anatomical.nii` (an MRI volume, LAS, 2 mm) and a CT series from pydicom's test data (five
16 × 16 slices, 0.49 × 0.49 × 2.5 mm, stored from the top down), also placed inside a margin of air.

The reference chains are written here with MONAI, step for step as the authors' repositories write them (CT-FM's
feature-extraction example with the pretraining spacing, VoCo's fine-tuning loaders, Merlin's `monai_transforms.py`,
MedicalNet's `__itensity_normalize_one_volume__`, BrainIAC's z-score over the brain), and loaded with MONAI's own
readers; medprobe's side is its reader and the chain its job builds from the model card (`authors_preprocessing`).
The comparison is of the whole-volume result, before the model's input step (medprobe brings a cube model's volume
to its input size by padding to a cube and resizing, which is medprobe's choice, not the authors').
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import (
    CenterSpatialCrop,
    Compose,
    CropForeground,
    EnsureType,
    LoadImage,
    NormalizeIntensity,
    Orientation,
    ScaleIntensityRange,
    Spacing,
    SpatialPad,
)
from nibabel.testing import data_path as nibabel_data

from medprobe.io.readers import read_image
from medprobe.models.cards import authors_defaults, load_card
from medprobe.preprocess import PreprocessChain
from medprobe.preprocess.input_spec import InputSpec
from medprobe.preprocess.options import Preprocessing, PreprocessOptions

NIFTI = Path(nibabel_data) / "anatomical.nii"
CT_SERIES = Path(pydicom.__file__).parent / "data" / "test_files" / "dicomdirtests" / "98892001" / "CT5N"
READERS = {NIFTI: "NibabelReader", CT_SERIES: "PydicomReader"}


def _medicalnet_zscore(volume: torch.Tensor) -> torch.Tensor:
    """MedicalNet datasets/brains18.py: mean and std of the voxels above 0, applied to all, zero voxels then reset
    (the authors fill them with noise; medprobe keeps them at 0, as MONAI's nonzero normalisation does)."""
    pixels = volume[volume > 0]
    out = (volume - pixels.mean()) / pixels.std(unbiased=False)
    return torch.where(volume == 0, torch.zeros_like(out), out)


#: model → (modality, the steps after loading, in the authors' order).
AUTHORS: dict[str, tuple[str, list[Callable[..., torch.Tensor]]]] = {
    "ct_fm": ("ct", [EnsureType(), Orientation(axcodes="SPL"), Spacing(pixdim=(3.0, 1.0, 1.0), mode="bilinear"),
                     ScaleIntensityRange(a_min=-1024, a_max=2048, b_min=0, b_max=1, clip=True), CropForeground()]),
    "voco_b": ("ct", [Orientation(axcodes="RAS"), Spacing(pixdim=(1.5, 1.5, 1.5), mode="bilinear"),
                      ScaleIntensityRange(a_min=-175.0, a_max=250.0, b_min=0.0, b_max=1.0, clip=True),
                      CropForeground()]),
    "merlin": ("ct", [Orientation(axcodes="RAS"), Spacing(pixdim=(1.5, 1.5, 3), mode="bilinear"),
                      ScaleIntensityRange(a_min=-1000, a_max=1000, b_min=0.0, b_max=1.0, clip=True),
                      SpatialPad(spatial_size=[224, 224, 160]), CenterSpatialCrop(roi_size=[224, 224, 160])]),
    # Neither MedicalNet's nor BrainIAC's loader reorients; medprobe's default RAS is applied to both sides.
    "medicalnet_resnet50": ("mri", [Orientation(axcodes="RAS"), _medicalnet_zscore]),
    "brainiac": ("mri", [Orientation(axcodes="RAS"), NormalizeIntensity(nonzero=True, channel_wise=True)]),
}


def _authors(model: str, path: Path) -> MetaTensor:
    load = LoadImage(reader=READERS.get(path, "NibabelReader"), ensure_channel_first=True, image_only=True,
                     dtype=np.float32)
    result = Compose([load, *AUTHORS[model][1]])(str(path))
    assert isinstance(result, MetaTensor)
    return result


def _medprobe(model: str, path: Path, modality: str) -> tuple[np.ndarray, np.ndarray]:
    """The whole-volume steps of the chain a job builds for `model` (its card's defaults, a silent spec)."""
    spec = InputSpec(3, (96, 96, 96), 1, None, None, "trilinear", authors_defaults(load_card(model)))
    chain = PreprocessChain(PreprocessOptions(modality=modality, preprocessing=Preprocessing(inputs="any")), spec)
    image = read_image(path, modality)
    for step in chain.image_steps:
        image = step(image, str(path))
    return image.array, image.affine


@pytest.fixture(scope="module")
def ct_in_air(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CT series inside a margin of air (-1024 HU, 6 voxels a side) as NIfTI: both files above are foreground
    to their edges, so without this the foreground crop would go untested."""
    series = LoadImage(reader="PydicomReader", image_only=True, dtype=np.float32)(str(CT_SERIES))
    margin = 6
    padded = np.pad(series.numpy(), margin, constant_values=-1024.0)
    affine = series.affine.numpy().copy()
    affine[:3, 3] -= affine[:3, :3] @ np.full(3, margin)
    path = tmp_path_factory.mktemp("ct") / "ct_in_air.nii.gz"
    nib.save(nib.Nifti1Image(padded, affine), str(path))
    return path


#: Every model on the NIfTI volume; the CT inputs for the models whose defaults are for CT (pydicom ships no MR
#: series of more than one slice).
INPUTS = {"nifti-mri": NIFTI, "dicom-ct": CT_SERIES, "nifti-ct-in-air": None}
CASES = [(model, name) for model in sorted(AUTHORS) for name in INPUTS
         if name == "nifti-mri" or "ct" in authors_defaults(load_card(model)).modalities]  # type: ignore[union-attr]


@pytest.mark.parametrize(("model", "name"), CASES, ids=[f"{m}-{n}" for m, n in CASES])
def test_the_default_chain_gives_the_authors_volume(model: str, name: str, ct_in_air: Path) -> None:
    path = INPUTS[name] or ct_in_air
    modality = AUTHORS[model][0] if name == "nifti-mri" else "ct"
    ours, affine = _medprobe(model, path, modality)
    theirs = _authors(model, path)
    assert ours.shape == tuple(theirs.shape)
    np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=1e-5)
    np.testing.assert_allclose(affine, theirs.affine.numpy(), rtol=0, atol=1e-4)


def test_a_chain_without_the_defaults_differs_from_the_authors() -> None:
    """The comparison can fail: the modality defaults alone (RAS, a brain window, no resampling, no crop) are not
    CT-FM's chain."""
    spec = InputSpec(3, (96, 96, 96), 1, None, None, "trilinear", authors_defaults(load_card("ct_fm")))
    off = Preprocessing(inputs="any", model_defaults=False)
    chain = PreprocessChain(PreprocessOptions(modality="ct", preprocessing=off), spec)
    image = read_image(CT_SERIES, "ct")
    for step in chain.image_steps:
        image = step(image, str(CT_SERIES))
    assert image.array.shape != tuple(_authors("ct_fm", CT_SERIES).shape)
