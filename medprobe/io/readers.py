"""Pick the reader for a path by its name, explicitly — never by which optional package happens to import."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medprobe.errors import ReadError
from medprobe.io.dicom_file import read_dicom_file
from medprobe.io.dicom_folder import read_dicom_folder
from medprobe.io.dicom_header import may_be_dicom
from medprobe.io.image import MedicalImage
from medprobe.io.nibabel_reader import read_nibabel
from medprobe.io.raster2d import read_raster2d
from medprobe.io.regular import is_special
from medprobe.io.sitk_reader import read_sitk

Reader = Callable[[Path], MedicalImage]

READERS: dict[str, Reader] = {
    ".nii": read_nibabel,
    ".nii.gz": read_nibabel,
    ".mgz": read_nibabel,
    ".mgh": read_nibabel,
    ".mnc": read_nibabel,
    ".hdr": read_nibabel,
    ".img": read_nibabel,
    ".par": read_nibabel,
    ".rec": read_nibabel,
    ".head": read_nibabel,
    ".brik": read_nibabel,
    ".brik.gz": read_nibabel,
    ".v": read_nibabel,
    ".mha": read_sitk,
    ".mhd": read_sitk,
    ".nrrd": read_sitk,
    ".nhdr": read_sitk,
    ".png": read_raster2d,
    ".jpg": read_raster2d,
    ".jpeg": read_raster2d,
    ".tif": read_raster2d,
    ".tiff": read_raster2d,
    ".dcm": read_dicom_file,
    ".dicom": read_dicom_file,
}


def format_of(path: Path) -> str:
    """The reader key for a file name: the longest known suffix ('.nii.gz' before '.gz')."""
    name = path.name.lower()
    for suffix in sorted(READERS, key=len, reverse=True):
        if name.endswith(suffix):
            return suffix
    return path.suffix.lower()


def read_image(path: str | Path, modality: str | None = None, series_uid: str | None = None) -> MedicalImage:
    """Read one image file, or one DICOM series from a folder. Raises ReadError (never anything else for a bad
    file) with the reason.

    DICOM files are recognised by suffix (.dcm, .dicom), by having none (or a numeric one, as in files named by
    UID), or by the 'DICM' marker whatever their name. `series_uid` (a manifest's optional column) selects the
    series with that SeriesInstanceUID in a folder holding several; for a DICOM file it must be the file's own
    series; any other file with a series_uid is an error. A folder with several series and no `series_uid` is an
    error, never a guess. UIDs select locally and never appear in a reason.
    """
    path = Path(path)
    series_uid = series_uid.strip() if isinstance(series_uid, str) and series_uid.strip() else None
    if not path.exists():
        raise ReadError(str(path), "file not found", "file-not-found")
    if is_special(path):
        raise ReadError(str(path), "not a regular file (a pipe, device or socket); not opened", "not-a-regular-file")
    if path.is_dir():
        image = read_dicom_folder(path, series_uid)
        return image if modality is None else _with_modality(image, modality)
    if path.is_file() and path.stat().st_size == 0:
        raise ReadError(str(path), "file is empty (0 bytes)", "empty-file")
    suffix = format_of(path)
    reader = READERS.get(suffix)
    if reader is None and may_be_dicom(path):
        reader = read_dicom_file
    if reader is None:
        known = ", ".join(sorted(READERS))
        raise ReadError(str(path), f"unsupported file type '{suffix or path.name}'; medprobe reads {known}, "
                                   "DICOM files and DICOM series folders", "unknown-format")
    if reader is read_dicom_file:
        image = read_dicom_file(path, series_uid)
    elif series_uid:
        raise ReadError(str(path), "the manifest gives a series_uid, but this is not a DICOM file or folder; "
                                   "series_uid selects a series in a DICOM folder: leave it blank for other files",
                        "series-uid-not-dicom")
    else:
        image = reader(path)
    return image if modality is None else _with_modality(image, modality)


def _with_modality(image: MedicalImage, modality: str) -> MedicalImage:
    return MedicalImage(image.array, image.affine, modality, image.nominal_range, image.metadata)
