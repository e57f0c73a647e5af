"""Open one file as DICOM, or say why it is not one: preamble sniffing, forced reads, quiet pydicom.

Hospital exports hold files with no suffix, files named by UID ('1.2.840….7') and old files without the 128-byte
preamble. A file is read with `force=True` only when its name allows that (no suffix, .dcm, .dicom, or a numeric
suffix); anything else must carry the 'DICM' marker. pydicom warns and logs while parsing malformed values, and
those messages quote the values (a patient's name, a date), so parsing runs with its warnings and logger silenced.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medprobe.errors import ReadError
from medprobe.io.dicom_reasons import object_kind, scrub

FORCE_SUFFIXES = frozenset({"", ".dcm", ".dicom"})
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# A forced read of a non-DICOM file yields junk tags; a real dataset has at least one of these.
_TELLTALE_KEYWORDS = ("SOPClassUID", "Modality", "Rows", "StudyInstanceUID", "SeriesInstanceUID",
                      "DirectoryRecordSequence")

_MODALITY_NAMES = {"MR": "mri", "CT": "ct", "CR": "xray", "DX": "xray", "DR": "xray", "OP": "fundus"}


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's warnings and log records (its own and its decoders'), which can quote element values.

    The failure itself is not lost: it becomes the ReadError's scrubbed reason.
    """
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def has_dicm_marker(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


def name_allows_force(path: Path) -> bool:
    """No suffix, .dcm/.dicom, or a numeric suffix (files named by UID or instance number)."""
    suffix = path.suffix.lower()
    return suffix in FORCE_SUFFIXES or suffix.lstrip(".").isdigit()


def may_be_dicom(path: Path) -> bool:
    return name_allows_force(path) or has_dicm_marker(path)


def read_dataset(path: Path, *, pixels: bool) -> Dataset:
    """Parse a file's dataset, or raise ReadError saying why it is not a usable DICOM file.

    With `pixels=False` large values (pixel data) are deferred, so indexing a folder stays cheap. A file without
    file meta but with native pixel data gets the transfer syntax its parsing revealed.
    """
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ReadError(str(path), f"cannot open the file ({type(exc).__name__})", "unreadable-file") from None
    if size == 0:
        raise ReadError(str(path), "file is empty (0 bytes)", "empty-file")
    marked = has_dicm_marker(path)
    if not marked and not name_allows_force(path):
        raise ReadError(str(path), "not a DICOM file (no DICM marker)", "not-dicom")
    try:
        with quiet_pydicom():
            ds = pydicom.dcmread(path, force=not marked, defer_size=None if pixels else 1024)
            looks_real = marked or any(keyword in ds for keyword in _TELLTALE_KEYWORDS)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for malformed files
        raise ReadError(str(path), f"not a readable DICOM file ({type(exc).__name__}: {scrub(str(exc))})",
                        "not-dicom") from None
    if not looks_real:
        raise ReadError(str(path), "not a DICOM file (no DICM marker and no DICOM image elements)", "not-dicom")
    if pixels:
        _fill_transfer_syntax(path, ds)
    return ds


def require_pixels(path: Path, ds: Dataset) -> None:
    """Refuse objects without an image: reports, plans, structure sets, waveforms, presentation states, DICOMDIR."""
    if not any(keyword in ds for keyword in PIXEL_KEYWORDS):
        kind = object_kind(ds)
        hint = "; truncated, or pixels stripped?" if "Image" in kind else ""
        raise ReadError(str(path), f"no pixel data ({kind}{hint})", "dicom-missing-pixels")


def modality_name(code: str | None) -> str | None:
    """medprobe's modality for a DICOM Modality code: MR→mri, CT→ct, CR/DX/DR→xray, OP→fundus, else lower-case."""
    if not code:
        return None
    return _MODALITY_NAMES.get(code, code.lower())


def _fill_transfer_syntax(path: Path, ds: Dataset) -> None:
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        return
    if not any(keyword in ds for keyword in PIXEL_KEYWORDS):
        return
    element = ds[next(k for k in PIXEL_KEYWORDS if k in ds)]
    if element.is_undefined_length:
        raise ReadError(str(path), "compressed pixel data but no transfer syntax in the file meta",
                        "dicom-invalid-header")
    implicit, little = ds.original_encoding
    if meta is None:
        ds.file_meta = meta = FileMetaDataset()
    if implicit:
        meta.TransferSyntaxUID = ImplicitVRLittleEndian
    else:
        meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian


def series_uid_of(ds: Dataset) -> str | None:
    """The SeriesInstanceUID, stripped of padding; None when absent or blank.

    UIDs identify a patient's study: use them to select locally, never put them into a reason, a log or a table.
    """
    value = str(ds.get("SeriesInstanceUID") or "").strip().strip("\x00").strip()
    return value or None


def uid_digest(uid: str) -> str:
    """A stand-in for a UID that objects can hold for matching without holding the UID itself."""
    return hashlib.sha256(uid.strip().strip("\x00").strip().encode()).hexdigest()


def functional_group(ds: Dataset, frame: int, keyword: str) -> Dataset | None:
    """First item of an enhanced multi-frame functional group for one frame; per-frame items override shared."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    containers = [per_frame[frame] if per_frame and frame < len(per_frame) else None, shared[0] if shared else None]
    for container in containers:
        sequence = container.get(keyword) if container is not None else None
        if sequence:
            return sequence[0]
    return None


def int_value(ds: Dataset, keyword: str) -> int | None:
    """An integer attribute, or None when it is absent, empty or malformed."""
    try:
        value = ds.get(keyword)
        return None if value in (None, "") else int(value)
    except Exception:  # noqa: BLE001 - malformed values (IS '1A') raise assorted types
        return None
