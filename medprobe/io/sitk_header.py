"""Where an MHA/MHD/NRRD/NHDR file keeps its voxels and how they are encoded, read from its text header.

Why: SimpleITK's `ReadImageInformation` gives the declared size and pixel type without reading the data, but not
the encoding or the data file, and those bound how many bytes the data can decode to (`medprobe.io.limits`).
Both headers are short `key = value` (MetaImage) or `key: value` (NRRD) text. Whatever this parser does not
recognise (file lists, numbered file patterns, bzip2, zstd, a header it cannot parse) gives None: then only the
value limit applies, and SimpleITK itself reports what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medprobe.io.limits import Encoding

_HEADER_BYTES = 65536
_NRRD_ENCODINGS: dict[str, Encoding | None] = {
    "raw": "raw", "gzip": "deflate", "gz": "deflate", "hex": "hex", "ascii": "ascii", "text": "ascii", "txt": "ascii",
    "bzip2": None, "bz2": None, "zstd": None,
}


@dataclass(frozen=True)
class StoredData:
    """The file holding the voxels (the header file itself when they are inline), its size and its encoding."""

    path: Path
    nbytes: int
    encoding: Encoding


def stored_data(path: Path) -> StoredData | None:
    """The stored voxels of an MHA/MHD/NRRD/NHDR file, or None when their size has no bound this parser knows."""
    try:
        with path.open("rb") as handle:
            text = handle.read(_HEADER_BYTES).decode("latin-1")
    except OSError:
        return None
    if text.startswith("NRRD"):
        encoding, data = _nrrd(text)
    else:
        encoding, data = _metaimage(text)
    if encoding is None or data is None:
        return None
    data_path = path if data in ("", "LOCAL") else path.parent / data
    try:
        return StoredData(data_path, data_path.stat().st_size, encoding)
    except OSError:
        return None  # a missing data file: SimpleITK says so


def _metaimage(text: str) -> tuple[Encoding | None, str | None]:
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        fields[key.strip().lower()] = value.strip()
        if key.strip().lower() == "elementdatafile":
            break
    else:
        return None, None  # no ElementDataFile within the header bytes: not a MetaImage header we understand
    if fields.get("compresseddata", "false").lower() == "true":
        encoding: Encoding = "deflate"
    elif fields.get("binarydata", "true").lower() == "false":
        encoding = "ascii"
    else:
        encoding = "raw"
    return encoding, _single_file(fields["elementdatafile"])


def _nrrd(text: str) -> tuple[Encoding | None, str | None]:
    fields: dict[str, str] = {}
    for line in text.splitlines()[1:]:
        if not line.strip():
            break  # the blank line that ends the header
        key, sep, value = line.partition(": ")
        if sep and not line.startswith("#") and ":=" not in key:
            fields[key.strip().lower()] = value.strip()
    encoding = _NRRD_ENCODINGS.get(fields.get("encoding", "").lower())
    data = fields.get("data file", fields.get("datafile", ""))
    return encoding, _single_file(data)


def _single_file(name: str) -> str | None:
    """The one data file named (or '' / 'LOCAL' for inline data); None for lists and numbered patterns."""
    if name.upper().startswith("LIST") or "%" in name or " " in name.strip():
        return None
    return name.strip()
