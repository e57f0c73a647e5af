"""DICOM series: index a folder into series, and stack one series' slices into a volume.

A folder from a PACS export mixes series, localizers, reports and stray files. `index_folder` reads headers only,
groups image files by SeriesInstanceUID and then by (rounded) ImageOrientationPatient, and says for each group
what is odd about it. `load_series` stacks the slices sorted by position along the slice normal, with each slice's
own rescale applied in float before stacking.

A series is named by `key`, a short hash of its UID and orientation group: stable across runs and safe to print.
UIDs, names and dates never appear in keys, warnings, reasons or the returned metadata.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset

from medprobe.errors import ReadError
from medprobe.io.dicom_decode import DecodedPixels, decode_pixels
from medprobe.io.dicom_file import PHYSICAL_MODALITIES, read_dicom_file
from medprobe.io.dicom_geometry import Plane, frame_plane, order_slices, plane_affine, stacked_positions
from medprobe.io.dicom_header import modality_name, quiet_pydicom, read_dataset, require_pixels
from medprobe.io.dicom_reasons import dicom_modality_code, scrub
from medprobe.io.image import MedicalImage

_LISTED_SERIES = 10


@dataclass
class DicomSeries:
    """One image series (one SeriesInstanceUID, one orientation) found by `index_folder`.

    `files` are in load order (along the slice normal) when the series can be loaded. `problem` says why
    `load_series` will refuse it (None when it can be loaded); `warnings` say what is odd but was tolerated.
    """

    key: str
    files: list[Path]
    modality: str | None
    n_slices: int
    warnings: list[str] = field(default_factory=list)
    problem: str | None = None

    def summary(self) -> str:
        text = f"{self.key} ({self.n_slices} slice{'s' if self.n_slices != 1 else ''}, {self.modality or '?'})"
        return f"{text} refused: {self.problem}" if self.problem else text


class SeriesIndex(list[DicomSeries]):
    """The series of a folder, plus `skipped`: reason → number of files that are not part of any series."""

    def __init__(self, series: list[DicomSeries], skipped: dict[str, int]) -> None:
        super().__init__(series)
        self.skipped = skipped

    def describe_skipped(self) -> str:
        return ", ".join(f"{count} × {reason}" for reason, count in sorted(self.skipped.items(), key=lambda x: -x[1]))


@dataclass(frozen=True)
class _Header:
    path: Path
    series: str
    plane: Plane
    size: tuple[int, int]
    frames: int
    instance: int
    modality: str | None


@dataclass
class _Plan:
    headers: list[_Header]
    slice_vector: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)
    problem: str | None = None


def index_folder(folder: str | Path) -> SeriesIndex:
    """Index every file under `folder` (recursively) into image series; other files are counted by reason."""
    folder = Path(folder)
    skipped: Counter[str] = Counter()
    groups: dict[tuple[str, tuple[float, ...] | None], list[_Header]] = defaultdict(list)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            with quiet_pydicom():
                ds = read_dataset(path, pixels=False)
                require_pixels(path, ds)
                header = _header(path, ds, folder)
        except ReadError as exc:
            skipped[_reason_class(exc.reason)] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - one malformed header must not stop the index
            skipped[f"unusable DICOM header ({type(exc).__name__})"] += 1
            continue
        groups[(header.series, header.plane.orientation_key)].append(header)
    per_series = Counter(series for series, _ in groups)
    found = [_series(key, headers, per_series[key[0]]) for key, headers in groups.items()]
    found.sort(key=lambda s: (str(s.files[0]) if s.files else "", s.key))
    return SeriesIndex(found, dict(skipped))


def load_series(series: DicomSeries) -> MedicalImage:
    """Stack a series into (C, X, Y, Z) along the slice normal. Raises ReadError with the reason it cannot."""
    where = str(_common_folder(series.files))
    if series.problem:
        raise ReadError(where, f"series {series.key}: {series.problem}")
    if len(series.files) == 1:
        return read_dicom_file(series.files[0])
    try:
        with quiet_pydicom():
            return _load_stack(series, where)
    except ReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed slices make pydicom and numpy raise anything
        raise ReadError(where, f"series {series.key}: unusable ({type(exc).__name__}: {scrub(str(exc))})") from None


def read_dicom_folder(folder: Path) -> MedicalImage:
    """`read_image` on a folder: load its only series, or say what is there and what to do."""
    index = index_folder(folder)
    if not index:
        found = f"skipped {index.describe_skipped()}" if index.skipped else "the folder holds no files"
        raise ReadError(str(folder), f"no DICOM image series found; {found}")
    if len(index) > 1:
        listed = "; ".join(s.summary() for s in index[:_LISTED_SERIES])
        more = f"; and {len(index) - _LISTED_SERIES} more" if len(index) > _LISTED_SERIES else ""
        raise ReadError(str(folder), f"{len(index)} DICOM series in the folder: {listed}{more}. Point the manifest "
                                     "at one series folder, or run `medprobe inspect FOLDER` to see them")
    return load_series(index[0])


def _load_stack(series: DicomSeries, where: str) -> MedicalImage:
    headers: list[_Header] = []
    decoded: dict[Path, DecodedPixels] = {}
    codes: dict[Path, str | None] = {}
    for number, path in enumerate(series.files, start=1):
        try:
            ds = read_dataset(path, pixels=True)
            require_pixels(path, ds)
            decoded[path] = decode_pixels(str(path), ds)
        except ReadError as exc:
            reason = f"series {series.key}: slice {number} of {len(series.files)}: {exc.reason}"
            raise ReadError(where, reason) from None
        headers.append(_header(path, ds, path.parent))
        codes[path] = dicom_modality_code(ds)  # keep the decoded floats, not the datasets' raw pixel bytes
    plan = _plan(headers)  # re-derived from what was read, in case files changed since indexing
    if plan.problem:
        raise ReadError(where, f"series {series.key}: {plan.problem}")
    slices = [decoded[h.path] for h in plan.headers]
    channels = {s.frames.shape[1:] for s in slices}
    if len(channels) > 1 or any(s.frames.shape[0] != 1 for s in slices):
        raise ReadError(where, f"series {series.key}: slices decode to different shapes or colour layouts")
    stacked = np.concatenate([s.frames for s in slices], axis=0)  # (Z, rows, cols, C)
    array = np.ascontiguousarray(stacked.transpose(3, 2, 1, 0))
    if np.isnan(array).all():
        raise ReadError(where, f"series {series.key}: every voxel is NaN")
    first, first_pixels = plan.headers[0], slices[0]
    code = codes[first.path]
    modality = modality_name(code)
    transforms = sorted({s.value_transform for s in slices})
    metadata: dict[str, str | int | float] = {
        "format": "dicom series",
        "stored_dtype": first_pixels.stored_dtype,
        "photometric": first_pixels.photometric,
        "rescale_applied": ", ".join(transforms) + " (per slice)",
        "transfer_syntax": first_pixels.transfer_syntax,
        "geometry": "patient",
        "slice_count": len(slices),
    }
    if first_pixels.bits_stored:
        metadata["bits_stored"] = first_pixels.bits_stored
    if code:
        metadata["modality"] = code
    warnings = list(dict.fromkeys([*series.warnings, *plan.warnings]))
    if warnings:
        metadata["warnings"] = "; ".join(warnings)
    nominal = None if modality in PHYSICAL_MODALITIES else first_pixels.stored_range
    return MedicalImage(array, plane_affine(first.plane, plan.slice_vector), modality, nominal, metadata)


def _series(key: tuple[str, tuple[float, ...] | None], headers: list[_Header], groups_in_series: int) -> DicomSeries:
    plan = _plan(headers)
    warnings = list(plan.warnings)
    if groups_in_series > 1:
        warnings.insert(0, f"mixed orientations: the series holds {groups_in_series} orientation groups "
                           "(localizers or reformats?), each indexed as its own series")
    frames = headers[0].frames if len(headers) == 1 else len(plan.headers)
    return DicomSeries(
        key=hashlib.sha256(f"{key[0]}\x00{key[1]}".encode()).hexdigest()[:12],
        files=[h.path for h in plan.headers],
        modality=headers[0].modality,
        n_slices=frames,
        warnings=warnings,
        problem=plan.problem,
    )


def _plan(headers: list[_Header]) -> _Plan:
    """Order a group's files along the normal, or say why they cannot form one volume."""
    by_name = sorted(headers, key=lambda h: str(h.path))
    sizes = Counter(h.size for h in headers)
    if len(sizes) > 1:
        listed = ", ".join(f"{n} file(s) {rows}×{cols}" for (rows, cols), n in sizes.most_common())
        return _Plan(by_name, problem=f"mixed rows/columns ({listed}); cannot stack")
    if len(headers) == 1:
        return _Plan(headers)
    if any(h.frames > 1 for h in headers):
        return _Plan(by_name, problem="mixes multi-frame files with other files; point medprobe at one file")
    unplaced = sum(h.plane.position is None or h.plane.orientation is None for h in headers)
    if unplaced:
        return _Plan(by_name, problem=f"{unplaced} of {len(headers)} files lack ImagePositionPatient or "
                                      "ImageOrientationPatient; cannot order the slices")
    spacings = {tuple(np.round(h.plane.spacing, 4)) if h.plane.spacing else None for h in headers}
    if len(spacings) > 1:
        return _Plan(by_name, problem=f"{len(spacings)} different pixel spacings; cannot stack")
    positions, normal = stacked_positions([h.plane for h in headers])
    order = order_slices(positions, normal, np.array([h.instance for h in headers]))
    if order.problem:
        return _Plan(by_name, problem=order.problem)
    return _Plan([headers[i] for i in order.order], order.slice_vector, order.warnings)


def _header(path: Path, ds: Dataset, folder: Path) -> _Header:
    series = str(ds.get("SeriesInstanceUID") or "") or f"no series UID in {path.parent.relative_to(folder)}"
    return _Header(
        path=path,
        series=series,
        plane=frame_plane(ds, 0),
        size=(int(ds.Rows), int(ds.Columns)),
        frames=int(ds.get("NumberOfFrames") or 1),
        instance=_instance_number(ds),
        modality=modality_name(dicom_modality_code(ds)),
    )


def _instance_number(ds: Dataset) -> int:
    """Only a tie-break between duplicate positions, so a malformed value just sorts last."""
    try:
        return int(ds.get("InstanceNumber"))
    except Exception:  # noqa: BLE001 - IS values such as '7A' raise assorted types
        return 2**31


def _reason_class(reason: str) -> str:
    """Group skip reasons: 'no pixel data (Basic Text SR)' stays whole, details of others are dropped."""
    return reason if reason.startswith("no pixel data") else reason.split(" (")[0]


def _common_folder(files: list[Path]) -> Path:
    return Path(os.path.commonpath([str(f.parent) for f in files])) if files else Path(".")
