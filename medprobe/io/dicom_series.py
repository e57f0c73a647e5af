"""DICOM series: index a folder into series, and stack one series' slices into a volume.

A folder from a PACS export mixes series, localizers, reports and stray files. `index_folder` reads headers only,
groups image files by SeriesInstanceUID and then by (rounded) ImageOrientationPatient, and says for each group
what is odd about it. `load_series` stacks the slices sorted by position along the slice normal, with each slice's
own rescale applied in float before stacking.

A series is named by `key`, a short hash of its UID and orientation group: stable across runs and safe to print.
UIDs, names and dates never appear in keys, warnings, reasons or the returned metadata. A manifest may select a
series by its SeriesInstanceUID (`SeriesIndex.matching`, used by `dicom_folder`): the match is made on digests.

Image files of a series whose headers cannot be used (pixels stripped, Rows missing, ...) are not dropped: next to
usable files of the same series they become a warning on it, alone they form a series of their own whose
`problem` says why, so `medprobe inspect` lists it with its reason. Files that are not images (reports, plans,
presentation states) and files that are not DICOM are counted in `skipped`.
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
from medprobe.io.dicom_header import (
    PIXEL_KEYWORDS,
    modality_name,
    quiet_pydicom,
    read_dataset,
    require_pixels,
    series_uid_of,
    uid_digest,
)
from medprobe.io.dicom_reasons import dicom_modality_code, object_kind, scrub
from medprobe.io.image import MedicalImage
from medprobe.io.limits import voxel_limit_problem


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
    #: sha256 of the SeriesInstanceUID ('' without one): lets a manifest's series_uid select it; never printed
    uid_digest: str = field(default="", repr=False, compare=False)

    @property
    def folder(self) -> Path:
        """Where the series lies: the folder its files share."""
        return _common_folder(self.files)

    def summary(self) -> str:
        text = f"{self.key} ({self.n_slices} slice{'s' if self.n_slices != 1 else ''}, {self.modality or '?'})"
        return f"{text} refused: {self.problem}" if self.problem else text


class SeriesIndex(list[DicomSeries]):
    """The series of a folder, plus `skipped`: reason → number of files that are not part of any series."""

    def __init__(self, series: list[DicomSeries], skipped: dict[str, int]) -> None:
        super().__init__(series)
        self.skipped = skipped

    def describe_skipped(self) -> str:
        return _counts_text(self.skipped)

    def matching(self, series_uid: str) -> list[DicomSeries]:
        """The series (one per orientation group) whose SeriesInstanceUID is `series_uid`."""
        wanted = uid_digest(series_uid)
        return [series for series in self if series.uid_digest == wanted]


@dataclass(frozen=True)
class _Header:
    path: Path
    series: str  # the SeriesInstanceUID, or a stand-in naming the folder; a grouping key, never printed
    uid_digest: str
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
    broken: dict[str, list[tuple[Path, str, str | None]]] = defaultdict(list)
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        try:
            with quiet_pydicom():
                ds = read_dataset(path, pixels=False)
        except ReadError as exc:
            skipped[_reason_class(exc.reason)] += 1
            continue
        except Exception as exc:  # noqa: BLE001 - one malformed header must not stop the index
            skipped[f"unusable DICOM header ({type(exc).__name__})"] += 1
            continue
        try:
            with quiet_pydicom():
                require_pixels(path, ds)
                header = _header(path, ds, folder)
        except Exception as exc:  # noqa: BLE001 - one malformed header must not stop the index
            reason = _reason_class(exc.reason if isinstance(exc, ReadError) else
                                   f"unusable DICOM header ({type(exc).__name__})")
            uid = series_uid_of(ds)
            if uid and _is_image(ds):
                broken[uid].append((path, reason, modality_name(dicom_modality_code(ds))))
            else:
                skipped[reason] += 1
            continue
        groups[(header.series, header.plane.orientation_key)].append(header)
    per_series = Counter(series for series, _ in groups)
    found = [_series(key, headers, per_series[key[0]], broken.get(key[0], [])) for key, headers in groups.items()]
    found += [_unreadable(uid, files) for uid, files in broken.items() if uid not in per_series]
    found.sort(key=lambda s: (str(s.files[0]) if s.files else "", s.key))
    return SeriesIndex(found, dict(skipped))


def load_series(series: DicomSeries) -> MedicalImage:
    """Stack a series into (C, X, Y, Z) along the slice normal. Raises ReadError with the reason it cannot."""
    where = str(_common_folder(series.files))
    if series.problem:
        raise ReadError(where, f"series {series.key}: {series.problem}", "dicom-series-unusable")
    if len(series.files) == 1:
        return read_dicom_file(series.files[0])
    try:
        with quiet_pydicom():
            return _load_stack(series, where)
    except ReadError:
        raise
    except Exception as exc:  # noqa: BLE001 - malformed slices make pydicom and numpy raise anything
        raise ReadError(where, f"series {series.key}: unusable ({type(exc).__name__}: {scrub(str(exc))})",
                        "dicom-series-unusable") from None


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
            raise ReadError(where, reason, exc.category) from None
        headers.append(_header(path, ds, path.parent))
        codes[path] = dicom_modality_code(ds)  # keep the decoded floats, not the datasets' raw pixel bytes
    plan = _plan(headers)  # re-derived from what was read, in case files changed since indexing
    if plan.problem:
        raise ReadError(where, f"series {series.key}: {plan.problem}", "dicom-series-unusable")
    slices = [decoded[h.path] for h in plan.headers]
    channels = {s.frames.shape[1:] for s in slices}
    if len(channels) > 1 or any(s.frames.shape[0] != 1 for s in slices):
        raise ReadError(where, f"series {series.key}: slices decode to different shapes or colour layouts",
                        "dicom-inconsistent-frames")
    stacked = np.concatenate([s.frames for s in slices], axis=0)  # (Z, rows, cols, C)
    array = np.ascontiguousarray(stacked.transpose(3, 2, 1, 0))
    if np.isnan(array).all():
        raise ReadError(where, f"series {series.key}: every voxel is NaN", "all-nan")
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


def _series(
    key: tuple[str, tuple[float, ...] | None],
    headers: list[_Header],
    groups_in_series: int,
    broken: list[tuple[Path, str, str | None]],
) -> DicomSeries:
    plan = _plan(headers)
    warnings = list(plan.warnings)
    if groups_in_series > 1:
        warnings.insert(0, f"mixed orientations: the series holds {groups_in_series} orientation groups "
                           "(localizers or reformats?), each indexed as its own series")
    if broken:
        reasons = _counts_text(Counter(reason for _, reason, _ in broken))
        warnings.append(f"{len(broken)} file(s) of the series left out: {reasons}")
    frames = headers[0].frames if len(headers) == 1 else len(plan.headers)
    rows, columns = headers[0].size
    problem = plan.problem or voxel_limit_problem(
        (columns, rows, frames), f"Columns {columns} × Rows {rows} × {frames} slice(s) or frame(s)")
    return DicomSeries(
        key=hashlib.sha256(f"{key[0]}\x00{key[1]}".encode()).hexdigest()[:12],
        files=[h.path for h in plan.headers],
        modality=headers[0].modality,
        n_slices=frames,
        warnings=warnings,
        problem=problem,
        uid_digest=headers[0].uid_digest,
    )


def _unreadable(uid: str, broken: list[tuple[Path, str, str | None]]) -> DicomSeries:
    """Image files of one series, none of them usable: a series of its own, listed with the reason."""
    reasons = _counts_text(Counter(reason for _, reason, _ in broken))
    return DicomSeries(
        key=hashlib.sha256(f"{uid}\x00unreadable".encode()).hexdigest()[:12],
        files=sorted(path for path, _, _ in broken),
        modality=next((modality for _, _, modality in broken if modality), None),
        n_slices=len(broken),
        problem=f"none of its {len(broken)} image file(s) is usable: {reasons}",
        uid_digest=uid_digest(uid),
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
    uid = series_uid_of(ds)
    return _Header(
        path=path,
        series=uid or f"no series UID in {path.parent.relative_to(folder)}",
        uid_digest=uid_digest(uid) if uid else "",
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


def _is_image(ds: Dataset) -> bool:
    """Pixel data, or an image SOP class whose pixels are missing (stripped or truncated)."""
    return any(keyword in ds for keyword in PIXEL_KEYWORDS) or "Image" in object_kind(ds)


def _counts_text(counts: Counter[str] | dict[str, int]) -> str:
    return ", ".join(f"{count} × {reason}" for reason, count in sorted(counts.items(), key=lambda x: -x[1]))


def _reason_class(reason: str) -> str:
    """Group skip reasons: 'no pixel data (Basic Text SR)' stays whole, details of others are dropped."""
    return reason if reason.startswith("no pixel data") else reason.split(" (")[0]


def _common_folder(files: list[Path]) -> Path:
    return Path(os.path.commonpath([str(f.parent) for f in files])) if files else Path(".")
