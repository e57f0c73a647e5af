"""Running TorchIO and MONAI transforms on medprobe arrays, and the geometry the resampling artefacts share.

TorchIO and MONAI load on first use: listing artefacts or recording their parameters must not pay for either.
Every call gets a private copy of the array, so no library can write into the caller's image.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def preload() -> None:
    """Import TorchIO and MONAI's transforms now, in this process: the embedding loader's worker processes are forked
    from it and inherit them, instead of each paying the imports (seconds) once per artefact and severity."""
    import monai.transforms  # noqa: F401
    import torchio  # noqa: F401


def torchio_apply(transform: Any, array: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """Apply a TorchIO transform to (C, X, Y, Z) or (C, X, Y) with the image's voxel-to-RAS affine.

    TorchIO's images are 4D; a 2D image travels as (C, X, Y, 1), which its transforms accept (zero extent along Z).
    """
    import torch
    import torchio as tio

    flat = array.ndim == 3
    data = np.array(array[..., None] if flat else array, dtype=np.float32, copy=True)
    image = tio.ScalarImage(tensor=torch.from_numpy(data), affine=np.array(affine, dtype=np.float64))
    out = transform(image).data.numpy()
    out = out[..., 0] if flat else out
    return np.ascontiguousarray(out, dtype=np.float32)


def monai_apply(transform: Any, array: np.ndarray) -> np.ndarray:
    """Apply a MONAI array transform to channel-first data; the result comes back as a float32 numpy array."""
    import torch
    from monai.utils import convert_to_numpy

    out = transform(torch.from_numpy(np.array(array, dtype=np.float32, copy=True)))
    return np.ascontiguousarray(convert_to_numpy(out), dtype=np.float32)


def through_plane_axis(affine: np.ndarray, spatial_shape: tuple[int, ...]) -> int:
    """The slice axis of a volume: the coarsest voxel size; among (near-)equal ones, the axis closest to the world's
    superior–inferior direction (axial slices, as CT and most 2D MRI acquire them)."""
    columns = np.asarray(affine, dtype=np.float64)[:3, : len(spatial_shape)]
    spacing = np.sqrt((columns**2).sum(axis=0))
    coarse = np.flatnonzero(spacing >= spacing.max() * 0.99)
    if coarse.size == 1:
        return int(coarse[0])
    superior = np.abs(columns[2, coarse]) / spacing[coarse]
    return int(coarse[int(np.argmax(superior))])


def down_and_back(array: np.ndarray, affine: np.ndarray, axis: int, spacing_mm: float) -> np.ndarray:
    """Resample to `spacing_mm` along `axis` with TorchIO's Gaussian anti-aliasing (the partial-volume PSF of a
    coarser acquisition, Cardoso et al. 2015), then linearly back onto the original grid.

    TorchIO centres the coarse grid inside the field of view, so its outer samples can lie inside the original
    extent, and SimpleITK fills what lies beyond them with 0 (air in CT would become water). The volume is first
    padded along `axis` by repeating its end slices, so the coarse grid covers the whole original extent.
    """
    import torchio as tio

    affine = np.array(affine, dtype=np.float64)
    shape = tuple(int(s) for s in array.shape[1:])
    spacing = [float(v) for v in np.sqrt((affine[:3, :3] ** 2).sum(axis=0))]
    pad = int(np.ceil(spacing_mm / spacing[axis])) + 1
    widths = [(0, 0)] * array.ndim
    widths[axis + 1] = (pad, pad)
    padded_affine = affine.copy()
    padded_affine[:3, 3] -= pad * affine[:3, axis]
    spacing[axis] = float(spacing_mm)
    down = tio.Resample((spacing[0], spacing[1], spacing[2]), image_interpolation="linear", antialias=True)
    back = tio.Resample((shape, affine), image_interpolation="linear")

    def both(image: Any) -> Any:
        return back(down(image))

    return torchio_apply(both, np.pad(array, widths, mode="edge"), padded_affine)
