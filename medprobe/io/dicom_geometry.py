"""DICOM patient geometry → medprobe's voxel-to-RAS affine, and the order of slices along the plane normal.

DICOM gives, per frame, the LPS position of the first voxel (ImagePositionPatient), the direction cosines of a
row and of a column (ImageOrientationPatient) and PixelSpacing = (distance between rows, distance between
columns). medprobe's voxel axis 0 runs along a row (the column index, DICOM's row cosine, stepped by the column
spacing), axis 1 down a column, axis 2 from slice to slice. LPS becomes RAS by negating x and y.

Slices are ordered by their position projected on the normal (row × column), never by InstanceNumber, which
scanners and PACS exports renumber freely.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydicom.dataset import Dataset

from medprobe.io.dicom_header import functional_group

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
ORIENTATION_DECIMALS = 4  # grouping key: ~0.006° of difference still counts as the same orientation
DUPLICATE_MM = 0.01  # slices closer than this along the normal share a position
TILT_DEGREES = 0.5  # the stack may drift this far off the normal before it counts as tilted or sheared
NONUNIFORM_FRACTION = 0.10
GAP_FACTOR = 1.5


@dataclass(frozen=True)
class Plane:
    """Where one frame lies in the patient (LPS, mm). Any part may be missing in real files.

    For projection radiographs without PixelSpacing, ImagerPixelSpacing (measured at the detector) stands in.
    """

    position: np.ndarray | None = None
    orientation: np.ndarray | None = None  # (row cosine, column cosine), 6 values
    spacing: tuple[float, float] | None = None  # PixelSpacing order: (between rows, between columns)
    thickness: float | None = None  # SpacingBetweenSlices, else SliceThickness

    @property
    def normal(self) -> np.ndarray | None:
        if self.orientation is None:
            return None
        return _normal_of(self.orientation)

    @property
    def orientation_key(self) -> tuple[float, ...] | None:
        if self.orientation is None:
            return None
        return tuple(float(v) + 0.0 for v in np.round(self.orientation, ORIENTATION_DECIMALS))


@dataclass
class SliceOrder:
    """Slices sorted along the normal, with what is odd about their spacing.

    `order` indexes the input, duplicates already dropped. `slice_vector` is the LPS step from one slice to the
    next: the median of consecutive position differences, so a tilted (sheared) stack keeps its true geometry.
    `problem` is set when the positions cannot form one volume.
    """

    order: list[int]
    slice_vector: np.ndarray
    step_mm: float
    dropped: int = 0
    warnings: list[str] = field(default_factory=list)
    problem: str | None = None


def plane_of(*sources: Dataset | None) -> Plane:
    """Read a Plane from the first source that holds each element (per-frame items before shared ones)."""
    position = _first(sources, "ImagePositionPatient", 3)
    orientation = _valid_orientation(_first(sources, "ImageOrientationPatient", 6))
    spacing = _first(sources, "PixelSpacing", 2)
    if spacing is None:
        spacing = _first(sources, "ImagerPixelSpacing", 2)
    thickness = _first(sources, "SpacingBetweenSlices", 1)
    if thickness is None:
        thickness = _first(sources, "SliceThickness", 1)
    return Plane(
        position=position,
        orientation=orientation,
        spacing=(float(spacing[0]), float(spacing[1])) if spacing is not None and (spacing > 0).all() else None,
        thickness=float(thickness[0]) if thickness is not None and thickness[0] > 0 else None,
    )


def frame_plane(ds: Dataset, index: int) -> Plane:
    """The plane of frame `index`: enhanced objects' functional groups first, then the top-level elements."""
    return plane_of(
        functional_group(ds, index, "PlanePositionSequence"),
        functional_group(ds, index, "PlaneOrientationSequence"),
        functional_group(ds, index, "PixelMeasuresSequence"),
        ds,
    )


def geometry_label(plane: Plane) -> str:
    if plane.orientation is not None and plane.position is not None:
        return "patient"
    return "pixel spacing only" if plane.spacing is not None else "none"


def plane_affine(plane: Plane, slice_vector: np.ndarray | None = None) -> np.ndarray:
    """Voxel (column, row, slice) → RAS mm. Without position and orientation: spacing on the diagonal."""
    row_mm, col_mm = plane.spacing or (1.0, 1.0)
    depth = plane.thickness or 1.0
    if plane.orientation is None or plane.position is None:
        third = float(np.linalg.norm(slice_vector)) if slice_vector is not None else depth
        return np.diag([col_mm, row_mm, third, 1.0])
    lps = np.eye(4)
    lps[:3, 0] = plane.orientation[:3] * col_mm
    lps[:3, 1] = plane.orientation[3:] * row_mm
    lps[:3, 2] = slice_vector if slice_vector is not None else _normal_of(plane.orientation) * depth
    lps[:3, 3] = plane.position
    return LPS_TO_RAS @ lps


def stacked_positions(planes: Sequence[Plane]) -> tuple[np.ndarray, np.ndarray]:
    """The positions (N, 3) of planes that all have a position and an orientation, and the first plane's normal.

    Callers check first that every plane has both; a plane without them here is a bug.
    """
    placed = [(p.position, p.orientation) for p in planes if p.position is not None and p.orientation is not None]
    if not placed or len(placed) != len(planes):
        raise ValueError("stacked_positions needs planes that all have a position and an orientation")
    return np.stack([position for position, _ in placed]), _normal_of(placed[0][1])


def order_slices(positions: np.ndarray, normal: np.ndarray, tiebreak: np.ndarray) -> SliceOrder:
    """Sort positions (N, 3) along `normal`; drop duplicates (keeping the lowest tiebreak); flag spacing oddities.

    A stack where every position occurs k > 1 times is k interleaved volumes (echoes, phases): refused.
    """
    normal = normal / np.linalg.norm(normal)
    along = positions @ normal
    order = np.lexsort((tiebreak, along))
    groups = np.split(order, np.flatnonzero(np.diff(along[order]) > DUPLICATE_MM) + 1)
    sizes = {len(g) for g in groups}
    kept = [int(g[0]) for g in groups]
    result = SliceOrder(order=kept, slice_vector=normal.copy(), step_mm=1.0, dropped=len(order) - len(kept))
    if len(sizes) == 1 and sizes != {1}:
        result.problem = (f"every slice position holds {sizes.pop()} slices (multi-echo, multi-phase or repeated "
                          "volumes?); not one 3D volume")
        return result
    if result.dropped:
        result.warnings.append(f"duplicate positions: {result.dropped} slice(s) dropped, "
                               "keeping the lowest instance number at each position")
    if len(kept) < 2:
        return result
    steps = np.diff(along[kept])
    step = float(np.median(steps))
    result.step_mm = step
    result.slice_vector = np.median(np.diff(positions[kept], axis=0), axis=0)
    result.warnings.extend(_spacing_warnings(steps, step))
    travel = positions[kept[-1]] - positions[kept[0]]
    tilt = float(np.degrees(np.arccos(np.clip(travel @ normal / np.linalg.norm(travel), -1.0, 1.0))))
    if tilt > TILT_DEGREES:
        result.warnings.append(f"gantry tilt: slices advance {tilt:.1f}° off the plane normal; "
                               "the affine follows the slice positions (sheared), nothing was resampled")
    return result


def _normal_of(orientation: np.ndarray) -> np.ndarray:
    """Row cosine × column cosine."""
    return np.cross(orientation[:3], orientation[3:])


def _spacing_warnings(steps: np.ndarray, step: float) -> list[str]:
    messages = []
    gaps = steps > GAP_FACTOR * step
    if gaps.any():
        messages.append(f"missing slices: {int(gaps.sum())} gap(s) larger than {GAP_FACTOR}× the median step of "
                        f"{step:.3g} mm (largest {steps.max():.3g} mm); the affine assumes the median step")
    uneven = (np.abs(steps - step) > NONUNIFORM_FRACTION * step) & ~gaps
    if uneven.any():
        messages.append(f"non-uniform spacing: {int(uneven.sum())} step(s) deviate more than "
                        f"{NONUNIFORM_FRACTION:.0%} from the median {step:.3g} mm")
    return messages


def _first(sources: tuple[Dataset | None, ...], keyword: str, count: int) -> np.ndarray | None:
    for source in sources:
        try:
            value = _floats(source.get(keyword), count) if source is not None and keyword in source else None
        except Exception:  # noqa: BLE001 - a malformed optional element means "missing", not "unreadable"
            value = None
        if value is not None:
            return value
    return None


def _floats(value: object, count: int) -> np.ndarray | None:
    if value is None or value == "":
        return None
    # DICOM values are str, numbers or MultiValue; float() of anything else raises TypeError, caught below
    items: list[Any] = [value] if isinstance(value, str | bytes) or not hasattr(value, "__iter__") else list(value)
    try:
        array = np.asarray([float(v) for v in items], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if array.shape != (count,) or not np.isfinite(array).all():
        return None
    return array


def _valid_orientation(values: np.ndarray | None) -> np.ndarray | None:
    """Unit, orthogonal row and column cosines (renormalised), else None: zeros and junk are common."""
    if values is None:
        return None
    row, col = values[:3], values[3:]
    row_norm, col_norm = np.linalg.norm(row), np.linalg.norm(col)
    if not (0.9 < row_norm < 1.1 and 0.9 < col_norm < 1.1) or abs(row @ col) > 0.01:
        return None
    return np.concatenate([row / row_norm, col / col_norm])
