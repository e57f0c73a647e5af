"""DICOM header bombs: the declared image size against MEDPROBE_MAX_VOXELS and against the pixel data actually held.

Why: Rows, Columns and NumberOfFrames are a few header bytes, and a decoder allocates its output from them before
it finds that the pixel data is a few bytes long. For native (uncompressed) transfer syntaxes the pixel data's
length is fixed by the header, so a shorter element is a truncated file or a forged header, refused here with
the numbers; compressed syntaxes have no such bound (JPEG 2000 can shrink a blank frame to a few bytes), so they
get the value limit only. Reasons hold numbers only, never element values.
"""

from __future__ import annotations

from pydicom.dataset import Dataset
from pydicom.uid import UID

from medprobe.errors import ReadError
from medprobe.io.dicom_header import int_value
from medprobe.io.limits import check_values, size_text

#: Bits per value of the float pixel data elements; PixelData uses BitsAllocated.
_FLOAT_BITS = {"FloatPixelData": 32, "DoubleFloatPixelData": 64}


def check_pixel_size(path: str, ds: Dataset, syntax: str | None) -> None:
    """Refuse a declared size above the value limit, or (native syntaxes) larger than the pixel data element.

    Needs Rows, Columns and SamplesPerPixel as integers (`dicom_decode._check_required` runs first).
    """
    rows, columns = int(ds.Rows), int(ds.Columns)
    frames, samples = int_value(ds, "NumberOfFrames") or 1, int_value(ds, "SamplesPerPixel") or 1
    label = f"Rows {rows} × Columns {columns} × {frames} frame(s) × {samples} sample(s)"
    check_values(path, (rows, columns, frames, samples), label)
    if not syntax or UID(str(syntax)).is_encapsulated:
        return
    keyword = next((k for k in ("PixelData", *_FLOAT_BITS) if k in ds), None)
    value = ds[keyword].value if keyword else None
    bits = _FLOAT_BITS.get(keyword or "") or int_value(ds, "BitsAllocated")
    if not isinstance(value, bytes | bytearray) or not bits:
        return
    values = rows * columns * frames * samples
    if samples == 3 and str(ds.get("PhotometricInterpretation", "")).strip() == "YBR_FULL_422":
        values = values * 2 // 3  # two chroma samples shared by each pair of pixels
    needed = -(-values * bits // 8)
    if len(value) < needed:
        raise ReadError(path, f"pixel data is truncated ({len(value)} of {needed} bytes): the header declares "
                              f"{label} × {bits} bits ({size_text(needed)}) but the element holds "
                              f"{size_text(len(value))}; refused before decoding", "truncated")
