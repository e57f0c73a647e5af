"""How a 2D encoder sees a 3D volume: explicit slices, recorded with the run.

Slices are taken from a RAS-oriented volume and shown the way radiologists' viewers lay them out in
neurological convention: superior/anterior at the top of the picture, the patient's left on the picture's left.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from medprobe.preprocess.options import VolumeTo2D

# RAS index axes: 0 = x (left→right), 1 = y (posterior→anterior), 2 = z (inferior→superior).
_AXIS_INDEX = {"sagittal": 0, "coronal": 1, "axial": 2}


class VolumeSlicer:
    """Turn a (C, X, Y, Z) volume into V pictures of shape (C, cols, rows); 2D images pass as one view."""

    def __init__(self, option: VolumeTo2D) -> None:
        self.option = option

    def __call__(self, array: np.ndarray) -> list[np.ndarray]:
        if array.ndim == 3:
            return [array]
        if self.option.strategy == "orthogonal":
            return [_plane(array, axis, array.shape[1 + axis] // 2) for axis in (2, 1, 0)]
        axis = _AXIS_INDEX[self.option.axis]
        return [_plane(array, axis, index) for index in self.positions(array.shape[1 + axis])]

    def positions(self, length: int) -> list[int]:
        """`n` evenly spaced indices over the central `extent` of an axis of `length` voxels."""
        n, extent = self.option.n, self.option.extent
        if n == 1:
            return [length // 2]
        half_span = extent * (length - 1) / 2
        centre = (length - 1) / 2
        return [round(p) for p in np.linspace(centre - half_span, centre + half_span, n)]

    def describe(self) -> dict[str, Any]:
        return {"step": "volume_to_2d", **self.option.model_dump(mode="json")}


def _plane(array: np.ndarray, axis: int, index: int) -> np.ndarray:
    """A plane as (C, cols, rows) in medprobe's 2D layout (x = column, y = row from the top)."""
    plane = np.take(array, index, axis=1 + axis)  # (C, a, b): the two remaining RAS axes in order
    # In-plane the second remaining axis (A or S) must grow upwards, i.e. rows run from high to low.
    return np.ascontiguousarray(plane[:, :, ::-1])
