"""Readers: one per format, all returning a MedicalImage with identifying metadata already dropped; the manifest.

Names load on first use (PEP 562): reading a manifest or checking a spec must not import the DICOM stack.
"""

from __future__ import annotations

from medprobe.lazy_exports import lazy_getattr

_WHERE = {
    "read_dicom_file": "dicom_file",
    "DicomSeries": "dicom_series",
    "SeriesIndex": "dicom_series",
    "index_folder": "dicom_series",
    "load_series": "dicom_series",
    "SAFE_METADATA_KEYS": "image",
    "MedicalImage": "image",
    "load_manifest": "manifest",
    "READERS": "readers",
    "format_of": "readers",
    "read_image": "readers",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_getattr(__name__, _WHERE)
