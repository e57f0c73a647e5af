"""Why an input was skipped, in words that may leave the site: a category and its fixed explanation.

Readers raise `ReadError(path, detail, category)`. The `detail` (the library's own message: it may quote a file
name, a header value or a UID) goes only to the workdir's local log (`medprobe.privacy.local_log`); the quarantine
report, MLflow and the results bundle get the category and the explanation below, nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Every category a skip reason can have, with what it means and what to do.
SKIP_CATEGORIES: dict[str, str] = {
    "file-not-found": "the manifest names a file or folder that does not exist",
    "not-a-regular-file": "the manifest names a pipe, device or socket, not a file or folder; it was not opened",
    "unreadable-file": "the file cannot be opened or read (permissions or an I/O error)",
    "empty-file": "the file is empty (0 bytes)",
    "unknown-format": "the file name has no suffix medprobe reads and the file is not DICOM",
    "truncated": "the file is shorter than its header declares (truncated or forged); refused before decoding",
    "truncated-gzip": "the compressed file ends early or is damaged (an interrupted copy?)",
    "corrupt-data": "the reader could not decode the file's contents",
    "too-large": "the header declares more voxels than the configured limit; refused before allocating",
    "not-an-image": "the file holds no image volume (a surface, table or other non-image object)",
    "unsupported-layout": "the image's dimensions or channels cannot be read as one 2D image or 3D volume",
    "all-nan": "every voxel is NaN",
    "not-finite": "preprocessing produced non-finite values",
    "bad-geometry": "the header's geometry is unusable (a voxel axis of zero length)",
    "wrong-dimensions": "the image's number of dimensions does not match the model or preprocessing.size",
    "volume-policy": "the image does not satisfy the spec's policy for 4D or multi-volume inputs",
    "not-dicom": "the file is not DICOM (no DICM marker and no DICOM image elements)",
    "dicom-missing-pixels": "the DICOM object holds no pixel data (a report, structured document or directory)",
    "dicom-unsupported-syntax": "no installed decoder reads the DICOM transfer syntax",
    "dicom-decode-failed": "the DICOM pixel data could not be decoded",
    "dicom-invalid-header": "required DICOM image elements are missing or invalid",
    "dicom-unsupported-colour": "the DICOM photometric interpretation is not supported",
    "dicom-inconsistent-frames": "the frames or slices do not form one volume (orientations, spacings or shapes)",
    "dicom-series-ambiguous": "the folder holds several DICOM series and the manifest gives no series_uid",
    "dicom-series-not-found": "no DICOM series in the folder matches the manifest (or none is readable)",
    "dicom-series-mismatch": "the DICOM file belongs to another series than the manifest's series_uid",
    "dicom-series-unusable": "the DICOM series cannot be stacked into one volume (gaps, duplicates, mixed slices)",
    "series-uid-not-dicom": "the manifest gives a series_uid for a file that is not DICOM",
    "derived-object": "a DICOM object that is not an acquired image (an RT dose grid, a segmentation, a report)",
    "modality-mismatch": "the DICOM Modality is not the spec's modality (a CT in an MRI job)",
    "single-slice": "a 2D image or a one-slice volume where the job expects volumes (data.preprocessing.inputs)",
    "too-small": "the image is more than 16 times smaller than the model's input along an axis the model sees",
    "empty-foreground": "no voxel above the intensity window's lower end, so the foreground crop has nothing to keep",
    "duplicate-image": "the same image file is listed for another subject in another split (patient leakage)",
    "reader-crashed": "reading the file crashed the reader process (a native decoder aborted: corrupt or unsupported)",
    "unexpected-error": "an unexpected error while reading or preprocessing (see the local log; please report it)",
}


@dataclass(frozen=True)
class SkipReason:
    """A category of `SKIP_CATEGORIES` and the local-only detail."""

    category: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.category not in SKIP_CATEGORIES:
            raise ValueError(f"unknown skip category {self.category!r}")

    @property
    def public(self) -> str:
        """What may leave the site: `category: explanation`."""
        return f"{self.category}: {SKIP_CATEGORIES[self.category]}"
