"""One DICOM file → MedicalImage: a 2D image, an enhanced multi-frame volume, or a stack of frames.

* Single frame → (C, X, Y) with a 4×4 affine from ImagePositionPatient/ImageOrientationPatient/PixelSpacing when
  present, else pixel spacing (or ImagerPixelSpacing) on the diagonal.
* Multi-frame with a position per frame (enhanced objects' PlanePositionSequence, RT Dose's
  GridFrameOffsetVector) → (C, X, Y, Z) sorted along the slice normal, spacing from the positions.
* Multi-frame without per-frame positions (cine ultrasound, multi-frame secondary capture, NM) → the frames are
  taken as a stack in stored order at 1 mm along the third axis. Such a stack is often time, not space; the
  metadata says so (`geometry` ends in "frames at unit spacing") so a caller can refuse it.

Nothing identifying reaches the result: metadata holds only allow-listed keys with values from dictionaries or
numbers, and every failure is a ReadError with a scrubbed reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from medprobe.errors import ReadError
from medprobe.io.dicom_decode import DecodedPixels, decode_pixels
from medprobe.io.dicom_geometry import (
    Plane,
    frame_plane,
    geometry_label,
    order_slices,
    plane_affine,
    stacked_positions,
)
from medprobe.io.dicom_header import (
    functional_group,
    modality_name,
    quiet_pydicom,
    read_dataset,
    require_pixels,
    series_uid_of,
    uid_digest,
)
from medprobe.io.dicom_reasons import dicom_modality_code, scrub
from medprobe.io.image import MedicalImage

#: Modalities whose values are physical or scanner units: no nominal range, intensity steps use the values.
PHYSICAL_MODALITIES = frozenset({"ct", "mri", "pt", "nm", "rtdose"})
UNIT_STACK = "frames at unit spacing"


@dataclass
class FrameLayout:
    """Which frames to keep in which order, and where they lie."""

    order: list[int]
    affine: np.ndarray
    geometry: str
    warnings: list[str] = field(default_factory=list)


def read_dicom_file(path: Path, series_uid: str | None = None) -> MedicalImage:
    """Read one DICOM file. Raises ReadError (never anything else) for files that are not usable images.

    With `series_uid` (a manifest's), the file must belong to that series; the reason never quotes either UID.
    """
    try:
        with quiet_pydicom():  # element access can warn, quoting values
            ds = read_dataset(path, pixels=True)
            if series_uid and uid_digest(series_uid_of(ds) or "") != uid_digest(series_uid):
                raise ReadError(str(path), "the file's SeriesInstanceUID is not the manifest's series_uid (the file "
                                           "belongs to another series, or has none)", "dicom-series-mismatch")
            require_pixels(path, ds)
            pixels = decode_pixels(str(path), ds)
            layout = frame_layout(str(path), ds, pixels.frames.shape[0])
            return to_medical_image(path, ds, pixels, layout)
    except ReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed files make pydicom and numpy raise anything
        raise ReadError(str(path), f"unusable DICOM ({type(exc).__name__}: {scrub(str(exc))})",
                        "dicom-decode-failed") from None


def to_medical_image(path: Path, ds: Dataset, pixels: DecodedPixels, layout: FrameLayout) -> MedicalImage:
    frames = pixels.frames[layout.order]
    if np.isnan(frames).all():
        raise ReadError(str(path), "every voxel is NaN", "all-nan")
    array = np.ascontiguousarray(frames.transpose(3, 2, 1, 0))  # (F, rows, cols, C) → (C, X=cols, Y=rows, Z)
    if array.shape[-1] == 1:  # one frame: a 2D image (C, X, Y)
        array = array[..., 0]
    code = dicom_modality_code(ds)
    modality = modality_name(code)
    metadata: dict[str, str | int | float] = {
        "format": "dicom",
        "stored_dtype": pixels.stored_dtype,
        "photometric": pixels.photometric,
        "rescale_applied": pixels.value_transform,
        "transfer_syntax": pixels.transfer_syntax,
        "geometry": layout.geometry,
    }
    if pixels.bits_stored:
        metadata["bits_stored"] = pixels.bits_stored
    if code:
        metadata["modality"] = code
    if array.ndim == 4:
        metadata["frames"] = int(pixels.frames.shape[0])
        metadata["slice_count"] = len(layout.order)
    if layout.warnings:
        metadata["warnings"] = "; ".join(layout.warnings)
    nominal = None if modality in PHYSICAL_MODALITIES else pixels.stored_range
    return MedicalImage(array=array, affine=layout.affine, modality=modality, nominal_range=nominal,
                        metadata=metadata)


def frame_layout(path: str, ds: Dataset, n_frames: int) -> FrameLayout:
    planes = [frame_plane(ds, index) for index in range(n_frames)]
    if n_frames == 1:
        return FrameLayout([0], plane_affine(planes[0]), geometry_label(planes[0]))
    per_frame = all(functional_group(ds, i, "PlanePositionSequence") is not None for i in range(n_frames))
    if per_frame and all(p.position is not None and p.orientation is not None for p in planes):
        return _sorted_layout(path, planes)
    offsets = _grid_offsets(ds, planes[0], n_frames)
    if offsets is not None:
        base = planes[0]
        shifted = [Plane(base.position + offset * base.normal, base.orientation, base.spacing, base.thickness)
                   for offset in offsets]
        return _sorted_layout(path, shifted)
    base = planes[0]
    step = base.normal if base.normal is not None else np.array([0.0, 0.0, 1.0])
    return FrameLayout(list(range(n_frames)), plane_affine(base, step), f"{geometry_label(base)}, {UNIT_STACK}",
                       [f"{n_frames} frames without per-frame positions: stacked in stored order at 1 mm"])


def _sorted_layout(path: str, planes: list[Plane]) -> FrameLayout:
    orientations = {p.orientation_key for p in planes}
    if len(orientations) > 1:
        raise ReadError(path, f"frames lie in {len(orientations)} different orientations; not one volume",
                        "dicom-inconsistent-frames")
    spacings = {p.spacing for p in planes}
    if len(spacings) > 1:
        raise ReadError(path, f"frames have {len(spacings)} different pixel spacings; not one volume",
                        "dicom-inconsistent-frames")
    positions, normal = stacked_positions(planes)
    sliced = order_slices(positions, normal, np.arange(len(planes)))
    if sliced.problem:
        raise ReadError(path, sliced.problem, "dicom-inconsistent-frames")
    first = planes[sliced.order[0]]
    return FrameLayout(sliced.order, plane_affine(first, sliced.slice_vector), "patient", sliced.warnings)


def _grid_offsets(ds: Dataset, base: Plane, n_frames: int) -> np.ndarray | None:
    """RT Dose frame offsets along the normal, relative to the first frame (absolute or relative in the file)."""
    if base.position is None or base.orientation is None or not ds.get("GridFrameOffsetVector"):
        return None
    try:
        offsets = np.asarray([float(v) for v in ds.GridFrameOffsetVector], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if offsets.shape != (n_frames,) or not np.isfinite(offsets).all():
        return None
    return offsets - offsets[0]
