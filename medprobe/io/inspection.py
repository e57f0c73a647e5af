"""Facts about images for `medprobe inspect`: geometry, stored type and the range of the physical values.

Only allow-listed facts leave this module: geometry, modality, stored dtype and value statistics. Paths are
reported as the caller gave them (the user's own local paths); nothing from inside a file's header is copied,
and DICOM UIDs that a reader might quote in a reason or warning are masked.

How a path is expanded:

* a file is read with `read_image` and gives one row;
* a folder is a DICOM folder: every series `index_folder` finds in it gives one row (a folder may hold several),
  with the series' own `location` (the folder its files share, written from the path the caller gave) and its
  number of `files`; a series that cannot be read — image files with unusable headers included — is a row with
  its reason, never dropped;
* a folder with no DICOM series (or while this medprobe has no DICOM support) gives one row per image file of a
  known format inside it, recursively; image files next to DICOM series are not listed — pass them as paths;
* a path that does not exist, a folder with nothing readable, and any file or series that fails to load give
  a row with `ok` false and a `reason`.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from medprobe.errors import ReadError
from medprobe.io.dicom_header import quiet_pydicom
from medprobe.io.image import VOLUMES_KEY, MedicalImage
from medprobe.io.readers import READERS, format_of, read_image

if TYPE_CHECKING:
    from medprobe.io.dicom_series import DicomSeries

#: Every row has these keys, in this order; facts that do not apply (or could not be read) are None.
ROW_KEYS = (
    "path", "ok", "reason", "series", "location", "modality", "shape", "channels", "volumes", "spacing",
    "orientation", "dtype", "format", "min", "max", "mean", "non_finite", "files", "slices", "warnings",
)
#: What a job does with a 4D series unless its preprocessing says otherwise (`medprobe.preprocess.volumes`).
FOUR_D_NOTE = ("4D series: {n} volumes on the 4th axis (time points, echoes or diffusion directions), held as "
               "channels; a job skips it unless data.preprocessing.volume_index or reduce_4d is set")

_SIGNIFICANT_DIGITS = 6
# DICOM UIDs are dotted digit strings starting with 0, 1 or 2 ("1.2.840.113619.2...").
_UID = re.compile(r"(?<![\w.])[0-2](?:\.(?:0|[1-9]\d*)){3,}(?![\w.])")


def describe_image(image: MedicalImage) -> dict[str, Any]:
    """Shape, spacing, orientation, modality, stored dtype and min/max/mean of the physical values.

    `shape` and `spacing` follow the spatial axes (x, y[, z]); `channels` is 1 for grayscale, 3 for RGB, and the
    number of volumes for a 4D series (then `volumes` says so; None otherwise).
    The statistics are over the values the reader returns — after rescale slope/intercept, before any
    normalisation — ignoring NaN and ±inf (`non_finite` counts those). Plain Python types only, floats
    rounded to 6 significant digits, non-finite numbers as None, so the dict serialises to strict JSON.
    """
    values = image.array
    finite = np.isfinite(values)
    non_finite = int(values.size - np.count_nonzero(finite))
    kept = values if non_finite == 0 else values[finite]
    if kept.size:
        low, high = float(kept.min()), float(kept.max())
        mean = float(kept.mean(dtype=np.float64))
    else:
        low = high = mean = math.nan
    metadata = image.metadata
    modality = image.modality or metadata.get("modality")
    return {
        "modality": str(modality) if modality else None,
        "shape": list(image.spatial_shape),
        "channels": image.channels,
        "volumes": int(metadata[VOLUMES_KEY]) if VOLUMES_KEY in metadata else None,
        "spacing": [_rounded(v) for v in image.spacing],
        "orientation": image.orientation,
        "dtype": str(metadata.get("stored_dtype", values.dtype)),
        "format": str(metadata["format"]) if "format" in metadata else None,
        "min": _rounded(low),
        "max": _rounded(high),
        "mean": _rounded(mean),
        "non_finite": non_finite,
    }


def inspect_path(path: str) -> list[dict[str, Any]]:
    """One row per image behind `path` (see the module docstring); never raises for a bad input."""
    target = Path(path)
    if not target.exists():
        return [_failed(path, "file not found")]
    with quiet_pydicom():
        if target.is_dir():
            return _inspect_folder(path, target)
        return [_inspect_file(path)]


def mask_uids(text: str) -> str:
    """Replace anything shaped like a DICOM UID with '<uid>'."""
    return _UID.sub("<uid>", text)


def _inspect_file(path: str) -> dict[str, Any]:
    try:
        return _row(path, describe_image(read_image(path)))
    except ReadError as exc:
        return _failed(path, exc.reason)
    except Exception as exc:  # noqa: BLE001 - one bad file is reported, never fatal
        return _failed(path, f"unexpected {type(exc).__name__}: {exc}")


def _inspect_folder(path: str, folder: Path) -> list[dict[str, Any]]:
    series_list: list[DicomSeries]
    try:
        from medprobe.io import index_folder, load_series
    except ImportError:
        series_list, dicom_note = [], "this medprobe has no DICOM support yet"
    else:
        try:
            series_list = index_folder(folder)
            skipped = series_list.describe_skipped() if hasattr(series_list, "describe_skipped") else ""
            dicom_note = f"no DICOM series{f' ({skipped})' if skipped else ''}"
        except ReadError as exc:
            series_list, dicom_note = [], exc.reason
        except Exception as exc:  # noqa: BLE001 - an unreadable folder is reported, never fatal
            series_list, dicom_note = [], f"unexpected {type(exc).__name__} while indexing DICOM: {exc}"
    if series_list:
        rows = [_inspect_series(path, folder, series, load_series) for series in series_list]
        return rows + _unattributed(path, getattr(series_list, "skipped", {}))
    images = _image_files(folder)
    if images:
        return [_inspect_file(str(Path(path) / image.relative_to(folder))) for image in images]
    return [_failed(path, f"no readable images in the folder: {dicom_note}; no image files of a known format")]


def _inspect_series(path: str, folder: Path, series: Any, load_series: Any) -> dict[str, Any]:
    extra = {
        "series": str(series.key),
        "location": _location(path, folder, series.folder),
        "modality": series.modality or None,
        "files": len(series.files),
        "slices": int(series.n_slices),
        "warnings": [mask_uids(str(w)) for w in series.warnings],
    }
    try:
        facts = describe_image(load_series(series))
    except ReadError as exc:
        return _failed(path, exc.reason, **extra)
    except Exception as exc:  # noqa: BLE001 - one bad series is reported, never fatal
        return _failed(path, f"unexpected {type(exc).__name__}: {exc}", **extra)
    if facts["modality"] is None:
        facts["modality"] = extra["modality"]
    return _row(path, {**extra, **facts})


def _unattributed(path: str, skipped: dict[str, int]) -> list[dict[str, Any]]:
    """Broken DICOM files beside the series (truncated, empty, unparseable headers) that no series could claim:
    one failed row, so they are not lost. Files that are not DICOM, and non-image objects (reports, plans), are
    expected in PACS exports and left out."""
    broken = {reason: n for reason, n in skipped.items() if not _expected_extra(reason)}
    if not broken:
        return []
    count = sum(broken.values())
    listed = ", ".join(f"{n} × {reason}" for reason, n in sorted(broken.items(), key=lambda x: -x[1]))
    return [_failed(path, f"{count} file(s) in no readable series: {listed}", location=path, files=count)]


def _expected_extra(reason: str) -> bool:
    return reason.startswith("not a DICOM file") or (reason.startswith("no pixel data") and "Image" not in reason)


def _location(path: str, folder: Path, where: Path) -> str:
    """The series' folder written from the path the caller gave (`study/` + `SE0003`), else as it is."""
    try:
        relative = where.relative_to(folder)
    except ValueError:
        return str(where)
    return str(Path(path) / relative) if relative.parts else path


def _image_files(folder: Path) -> list[Path]:
    """Image files of a known format below `folder`, in name order, skipping hidden files and folders."""
    found = []
    for candidate in folder.rglob("*"):
        relative = candidate.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if candidate.is_file() and format_of(candidate) in READERS:
            found.append(candidate)
    return sorted(found)


def _row(path: str, facts: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(ROW_KEYS)
    row.update(facts, path=path, ok=True, reason=None)
    row["warnings"] = list(row["warnings"] or [])
    if row["volumes"]:
        row["warnings"].append(FOUR_D_NOTE.format(n=row["volumes"]))
    return row


def _failed(path: str, reason: str, **facts: Any) -> dict[str, Any]:
    row = _row(path, facts)
    row.update(ok=False, reason=mask_uids(reason))
    return row


def _rounded(value: float) -> float | None:
    if not math.isfinite(value):
        return None
    return float(f"{value:.{_SIGNIFICANT_DIGITS}g}")
