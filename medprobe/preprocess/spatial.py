"""Geometric steps on the whole image: orientation, voxel size, target size; each keeps the affine consistent.

Orientation and spacing use the same geometry as MONAI's `Orientation` and `Spacing` (nibabel's orientation
transforms, MONAI's `zoom_affine` and `compute_shape_offset`) but skip MONAI's copies: reorientation is a view of
the reader's array and axis-aligned resampling is separable (see `resample.py`). The target size step runs MONAI's
`Resize` / `ResizeWithPadOrCrop` on a MetaTensor, which carries the affine through.
"""

from __future__ import annotations

from typing import Any, Literal

import nibabel as nib
import numpy as np
import torch
from monai.data import MetaTensor
from monai.data.utils import AFFINE_TOL, affine_to_spacing, compute_shape_offset, zoom_affine
from monai.transforms import CropForeground, Resize, ResizeWithPadOrCrop, Spacing

from medprobe.errors import ReadError
from medprobe.io.image import MedicalImage
from medprobe.preprocess.resample import is_axis_aligned, resample_axis_aligned

_RAS_LABELS = (("L", "R"), ("P", "A"), ("I", "S"))


class ToOrientation:
    """Reorder and flip voxel axes so that index axes point to the given codes (RAS by default).

    The result is a view (flips and transposes, no copy); a volume already in that orientation is returned as is.
    """

    def __init__(self, axcodes: str = "RAS") -> None:
        self.axcodes = axcodes
        self._target = nib.orientations.axcodes2ornt(axcodes, labels=_RAS_LABELS)

    def __call__(self, image: MedicalImage, source: str = "image") -> MedicalImage:
        if image.spatial_dims != 3:
            return image
        current = nib.orientations.io_orientation(image.affine)
        if np.isnan(current).any():
            raise ReadError(source, "the affine gives a voxel axis zero length, so the orientation is unknown; "
                                     "fix the header's voxel sizes (pixdim / sform)", "bad-geometry")
        transform = nib.orientations.ornt_transform(current, self._target)
        if np.array_equal(transform, [[0, 1], [1, 1], [2, 1]]):
            return image
        channels_last = np.moveaxis(image.array, 0, -1)  # apply_orientation works on the leading axes
        array = np.moveaxis(nib.orientations.apply_orientation(channels_last, transform), -1, 0)
        affine = image.affine @ nib.orientations.inv_ornt_aff(transform, image.spatial_shape)
        return MedicalImage(array, affine, image.modality, image.nominal_range, image.metadata)

    def describe(self) -> dict[str, Any]:
        return {"step": "orientation", "axcodes": self.axcodes}


class ToSpacing:
    """Resample a volume to a voxel size in mm (linear interpolation, border padding), as MONAI's `Spacing`.

    The output grid is MONAI's (same shape, affine and sample positions); an axis already within MONAI's
    tolerance (1e-3 mm) of the target keeps its spacing, and a volume already on the target grid is returned as is.
    """

    def __init__(self, pixdim: tuple[float, float, float]) -> None:
        self.pixdim = tuple(float(v) for v in pixdim)
        self._fallback = Spacing(pixdim=self.pixdim, mode="bilinear", padding_mode="border")

    def __call__(self, image: MedicalImage, source: str = "image") -> MedicalImage:
        if image.spatial_dims != 3:
            return image
        affine = np.asarray(image.affine, dtype=np.float64)
        target, shape = self.target_grid(affine, image.spatial_shape)
        xform = np.linalg.solve(affine, target)
        if shape == image.spatial_shape and np.allclose(xform, np.eye(4), atol=AFFINE_TOL):
            return image
        if is_axis_aligned(xform):
            array = resample_axis_aligned(image.array, xform, shape)
            return MedicalImage(array, target, image.modality, image.nominal_range, image.metadata)
        # Sheared affines: MONAI removes the shear, so the map mixes axes; let MONAI's grid sampler do it.
        tensor = MetaTensor(torch.from_numpy(np.ascontiguousarray(image.array)), affine=torch.from_numpy(affine))
        return _from_metatensor(image, self._fallback(tensor))

    def target_grid(self, affine: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, tuple[int, ...]]:
        """The output affine and shape `monai.transforms.Spacing(pixdim, diagonal=False)` would produce."""
        have = affine_to_spacing(affine, 3, np.float64)
        want = np.asarray(self.pixdim, dtype=np.float64)
        want = np.where(np.abs(have - want) <= AFFINE_TOL, have, want)
        target = zoom_affine(affine, want, diagonal=False)
        out_shape, offset = compute_shape_offset(shape, affine, target, False)
        target[:3, 3] = offset[:3]
        return target, tuple(int(s) for s in out_shape)

    def describe(self) -> dict[str, Any]:
        return {"step": "spacing", "pixdim": list(self.pixdim)}


class ToSize:
    """Bring the whole image or volume to a fixed size in voxels, before any 3D→2D views.

    fit "resize" interpolates (bilinear/trilinear, Gaussian anti-aliasing when shrinking); "crop_or_pad" keeps the
    voxel size and centre-crops or pads symmetrically with the image minimum. The size's length must match the
    image's spatial dimensions: a mismatch is a ReadError for that sample, never a silent reinterpretation.
    """

    def __init__(self, size: tuple[int, ...], fit: Literal["resize", "crop_or_pad"] = "resize",
                 pad_value: float | None = None) -> None:
        self.size = tuple(int(v) for v in size)
        self.fit = fit
        self.pad_value = pad_value
        self.mode = "trilinear" if len(self.size) == 3 else "bilinear"
        self._resize = Resize(self.size, mode=self.mode, anti_aliasing=True)
        self._crop_or_pad = ResizeWithPadOrCrop(self.size, method="symmetric", mode="constant")

    def check(self, image: MedicalImage, source: str) -> None:
        dims = image.spatial_dims
        if len(self.size) != dims:
            raise ReadError(source, f"preprocessing.size {list(self.size)} has {len(self.size)} values but this "
                                    f"image is {dims}D {list(image.spatial_shape)}; give {dims} values, or "
                                    f"keep {dims}D inputs in a manifest of their own", "wrong-dimensions")

    def __call__(self, image: MedicalImage, source: str = "image") -> MedicalImage:
        self.check(image, source)
        if image.spatial_shape == self.size:
            return image
        tensor = _to_metatensor(image)
        if self.fit == "resize":
            return _from_metatensor(image, self._resize(tensor))
        value = float(tensor.min()) if self.pad_value is None else self.pad_value
        return _from_metatensor(image, self._crop_or_pad(tensor, value=value))

    def describe(self) -> dict[str, Any]:
        if self.fit == "resize":
            return {"step": "size", "size": list(self.size), "fit": "resize", "mode": self.mode,
                    "anti_aliasing": True}
        return {"step": "size", "size": list(self.size), "fit": "crop_or_pad", "crop": "centre",
                "pad": "symmetric", "pad_value": "image_minimum" if self.pad_value is None else self.pad_value}


class CropToForeground:
    """Crop to the bounding box of the voxels above 0, after intensity scaling: MONAI's `CropForeground` with its
    defaults (the step CT-FM's and VoCo's authors run), the affine moved with the crop.

    An image with no voxel above 0 (every voxel at or below the window's lower end) has nothing to crop to: it is
    refused, never passed on empty.
    """

    def __init__(self) -> None:
        self._crop = CropForeground()

    def __call__(self, image: MedicalImage, source: str = "image") -> MedicalImage:
        if not (image.array > 0).any():
            raise ReadError(source, "no voxel is above the intensity window's lower end, so there is no foreground "
                                    "to crop to; check the modality and window, or set "
                                    "data.preprocessing.crop_foreground: false", "empty-foreground")
        return _from_metatensor(image, self._crop(_to_metatensor(image)))

    def describe(self) -> dict[str, Any]:
        return {"step": "crop_foreground", "select": "value > 0", "margin": 0}


def _to_metatensor(image: MedicalImage) -> MetaTensor:
    """The image as float32 with its affine, for MONAI's transforms."""
    array = np.ascontiguousarray(image.array, dtype=np.float32)
    return MetaTensor(torch.from_numpy(array), affine=torch.from_numpy(np.asarray(image.affine, np.float64)))


def _from_metatensor(image: MedicalImage, tensor: torch.Tensor) -> MedicalImage:
    # MONAI's transforms are typed to return a plain Tensor; given a MetaTensor they return one (meta tracking on)
    if not isinstance(tensor, MetaTensor):
        raise TypeError(f"expected MONAI to return a MetaTensor, got {type(tensor).__name__}")
    array = np.ascontiguousarray(tensor.as_tensor().numpy(), dtype=np.float32)
    affine = np.asarray(tensor.affine.numpy(), dtype=np.float64)
    return MedicalImage(array, affine, image.modality, image.nominal_range, image.metadata)
