"""Refuse header bombs before allocating anything: a ceiling on values per image, and the declared size checked
against the bytes a file holds.

Why: a header is a few bytes that tell a reader how much memory to allocate. A 52-byte .nii.gz can declare 800³
float32 voxels, and reading it used to take 2.2 GB before failing on the missing data; on a shared node a
handful of such files in a DataLoader kills the job (or a neighbour's). Both checks use header facts only:

* `check_values`: the values a reader would return (voxels × channels × volumes or frames; each becomes a float32)
  against MEDPROBE_MAX_VOXELS, default 1024³ = 1,073,741,824 values (4 GiB as float32). A larger image is refused
  with a reason naming the limit and how to raise it — for a site that really has such images, on a node with
  the memory.
* `check_stored`: the bytes the declared shape needs against the most the stored bytes can decode to. The bound
  is physical, not a guess: raw data is 1:1; deflate (gzip and zlib: .nii.gz, .mgz, compressed MHA/NRRD, PNG)
  can never expand more than 1032:1 (a 258-byte match costs at least 2 bits), so even an all-zero mask passes,
  while a 52-byte file claiming 2 GB does not; hex is 2 characters per byte; ASCII needs at least 2 characters
  (a digit and a separator) per value. Encodings without such a ceiling (bzip2, zstd, JPEG, JPEG 2000, HDF5
  chunks with fill values) get the value limit only.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from medprobe.errors import ReadError

MAX_VOXELS_ENV = "MEDPROBE_MAX_VOXELS"
DEFAULT_MAX_VOXELS = 1024**3
#: Deflate's hard ceiling: no gzip or zlib stream decodes to more than 1032 times its size.
DEFLATE_MAX_RATIO = 1032
#: Allowance for container headers, trailers and block overhead, so tiny files are never refused by rounding.
_SLACK_BYTES = 4096

Encoding = Literal["raw", "deflate", "hex", "ascii"]

_MAGIC: tuple[tuple[bytes, Encoding | None], ...] = (
    (b"\x1f\x8b", "deflate"),  # gzip
    (b"BZh", None),  # bzip2: no useful ceiling (zeros compress about 900,000:1)
    (b"\x28\xb5\x2f\xfd", None),  # zstd
    (b"\xfd7zXZ\x00", None),  # xz
    (b"\x89HDF", None),  # HDF5 (MINC 2): chunks may be absent and read as fill values
)


def max_voxels() -> int:
    """The limit in force: MEDPROBE_MAX_VOXELS, else 1024³. A malformed value is an error, never ignored."""
    text = os.environ.get(MAX_VOXELS_ENV, "").strip().replace("_", "")
    if not text:
        return DEFAULT_MAX_VOXELS
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise ReadError("", f"{MAX_VOXELS_ENV}={text!r} is not a whole number of voxels ≥ 1; unset it "
                                        f"(default {DEFAULT_MAX_VOXELS:,}) or give e.g. {MAX_VOXELS_ENV}=2147483648",
                        "too-large")
    return int(value)


def voxel_limit_problem(shape: Sequence[int], label: str | None = None) -> str | None:
    """Why an image of this declared shape is refused by the value limit, or None when it is within it."""
    values = math.prod(int(s) for s in shape)
    try:
        limit = max_voxels()
    except ReadError as exc:
        return exc.reason
    if values <= limit:
        return None
    return (f"the header declares {label or shape_text(shape)} = {values:,} values, above the limit of {limit:,} "
            f"({size_text(4 * values)} as float32); if the image is real, raise the limit with {MAX_VOXELS_ENV} "
            f"(e.g. {MAX_VOXELS_ENV}={_round_up(values)}) on a node with that much memory")


def check_values(path: str, shape: Sequence[int], label: str | None = None) -> None:
    """Raise ReadError when the declared shape holds more values than MEDPROBE_MAX_VOXELS allows."""
    problem = voxel_limit_problem(shape, label)
    if problem:
        raise ReadError(path, problem, "too-large")


def check_stored(
    path: str, shape: Sequence[int], itemsize: float, stored_bytes: int, encoding: Encoding,
    label: str | None = None,
) -> None:
    """Raise ReadError when `stored_bytes` in `encoding` cannot hold the declared shape of `itemsize`-byte values."""
    values = math.prod(int(s) for s in shape)
    needed = values * itemsize
    if encoding == "ascii":
        possible = (stored_bytes + 1) // 2 * itemsize
    elif encoding == "hex":
        possible = stored_bytes / 2
    elif encoding == "deflate":
        possible = (stored_bytes + _SLACK_BYTES) * DEFLATE_MAX_RATIO
    else:
        possible = stored_bytes
    if needed <= possible:
        return
    how = {"raw": "", "deflate": f", deflate-compressed, which decodes to at most {DEFLATE_MAX_RATIO}× its size",
           "hex": " of hex text", "ascii": " of text numbers"}[encoding]
    raise ReadError(path, f"the header declares {label or shape_text(shape)} ({size_text(needed)} of voxel data) but "
                          f"the file holds only {size_text(stored_bytes)}{how}: truncated, or a forged header; "
                          "refused before allocating", "truncated")


def stored_encoding(path: Path) -> Encoding | None:
    """How a data file is stored, from its first bytes: 'deflate' (gzip), None (no size bound), else 'raw'."""
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
    except OSError:
        return None
    for magic, encoding in _MAGIC:
        if head.startswith(magic):
            return encoding
    return "raw"


def shape_text(shape: Sequence[int]) -> str:
    return "×".join(str(int(s)) for s in shape)


def size_text(nbytes: float) -> str:
    """Bytes in decimal units: '65 bytes', '2.05 GB'."""
    if nbytes < 1000:
        return f"{int(nbytes)} bytes"
    exponent = min(int(math.log10(nbytes)) // 3, 4)
    return f"{nbytes / 1000**exponent:.3g} {('kB', 'MB', 'GB', 'TB')[exponent - 1]}"


def _round_up(values: int) -> int:
    """A limit comfortably above `values` with two significant digits, for the hint."""
    magnitude = 10 ** max(len(str(values)) - 2, 0)
    return -(-values // magnitude) * magnitude
