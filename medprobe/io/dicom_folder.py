"""A folder as `read_image` sees it: its one DICOM series, the series a manifest's series_uid selects, or a
refusal that says what is there and what to do.

Why a refusal rather than a pick: a study folder holds localizers, several sequences and reformats, and no rule
(most slices, first by name) reliably finds the series a task means; embedding the wrong one would go unnoticed.
So several series without a series_uid is an error naming the fix. UIDs select locally: reasons count series and
name their keys (hashes), never a UID, because a reason reaches quarantine reports that may leave the site.
"""

from __future__ import annotations

from pathlib import Path

from medprobe.errors import ReadError
from medprobe.io.dicom_series import DicomSeries, SeriesIndex, index_folder, load_series
from medprobe.io.image import MedicalImage

_LISTED_SERIES = 10


def read_dicom_folder(folder: Path, series_uid: str | None = None) -> MedicalImage:
    """`read_image` on a folder: load the series `series_uid` names, or the folder's only series, or say what is
    there and what to do. Several series and no `series_uid` is an error (no series is picked by guesswork)."""
    index = index_folder(folder)
    if series_uid:
        return load_series(_selected(folder, index, series_uid))
    if not index:
        found = f"skipped {index.describe_skipped()}" if index.skipped else "the folder holds no files"
        raise ReadError(str(folder), f"no DICOM image series found; {found}", "dicom-series-not-found")
    if len(index) > 1:
        listed = "; ".join(s.summary() for s in index[:_LISTED_SERIES])
        more = f"; and {len(index) - _LISTED_SERIES} more" if len(index) > _LISTED_SERIES else ""
        raise ReadError(str(folder), f"{len(index)} DICOM series in the folder: {listed}{more}. Add a series_uid "
                                     "column to the manifest (the SeriesInstanceUID of the series to read) or point "
                                     "the manifest at one series folder; `medprobe inspect FOLDER` lists the series",
                        "dicom-series-ambiguous")
    return load_series(index[0])


def _selected(folder: Path, index: SeriesIndex, series_uid: str) -> DicomSeries:
    """The one series of `index` with that UID, or a ReadError that counts series but never names a UID."""
    matches = index.matching(series_uid)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ReadError(str(folder), f"the manifest's series_uid names a series with {len(matches)} orientation "
                                     "groups (localizers or reformats?); export the wanted images to a folder of "
                                     "their own and point the manifest at it", "dicom-series-ambiguous")
    skipped = f" (and skipped {index.describe_skipped()})" if index.skipped else ""
    raise ReadError(str(folder), f"none of the {len(index)} DICOM series in the folder has the manifest's series_uid"
                                 f"{skipped}; check the series_uid, or run `medprobe inspect FOLDER` to see them",
                    "dicom-series-not-found")
