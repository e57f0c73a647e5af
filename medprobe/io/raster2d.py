"""2D images (PNG, JPEG, TIFF; 8- or 16-bit; grayscale or RGB) through Pillow.

Size limits are medprobe's, the same for every format: `Image.open` reads the header only, then the declared
width × height × bands is checked against MEDPROBE_MAX_VOXELS, and a PNG's declared size against what its
deflate-compressed bytes can decode to (`medprobe.io.limits`), before `load` allocates. Pillow's own
decompression-bomb check (a warning above 89 M pixels, an error above 179 M, whatever the memory of the node)
is switched off while opening, so one limit, with one reason and one way to raise it, applies to all images.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from medprobe.errors import ReadError
from medprobe.io.failures import failure_category
from medprobe.io.image import MedicalImage
from medprobe.io.limits import check_stored, check_values

_GRAY_MODES = {"1", "L", "I;16", "I;16B", "I;16L", "I", "F"}
#: PNG colour type → samples per pixel (IHDR, PNG specification 11.2.2).
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_PILLOW_LIMIT = threading.Lock()


def _fresh_lock() -> None:
    """A DataLoader worker forked while another thread held the lock must not inherit it held."""
    global _PILLOW_LIMIT
    _PILLOW_LIMIT = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock)


def read_raster2d(path: Path) -> MedicalImage:
    """Read a 2D picture as (C, X, Y) with X = columns, Y = rows, keeping the stored range for scaling."""
    try:
        with _open(path) as image:
            width, height = image.size
            check_values(str(path), (width, height, len(image.getbands())),
                         f"{width}×{height} pixels × {len(image.getbands())} band(s)")
            if image.format == "PNG":
                _check_png(path)
            image.load()
            array, nominal = _to_array(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ReadError(str(path), f"not a readable 2D image ({type(exc).__name__}: {exc})",
                        failure_category(exc)) from None
    channels_first = np.moveaxis(array, -1, 0) if array.ndim == 3 else array[None]
    # Pillow gives rows first; medprobe's spatial axes are (x=column, y=row) like the volumes' (i, j).
    channels_first = np.ascontiguousarray(np.swapaxes(channels_first, 1, 2), dtype=np.float32)
    return MedicalImage(
        array=channels_first,
        affine=np.eye(4),
        nominal_range=nominal,
        metadata={"format": path.suffix.lower().lstrip("."), "stored_dtype": str(array.dtype)},
    )


@contextmanager
def _open(path: Path) -> Iterator[Image.Image]:
    """`Image.open` with Pillow's global pixel limit off for this call only (medprobe's limit applies instead)."""
    with _PILLOW_LIMIT:
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            image = Image.open(path)
        finally:
            Image.MAX_IMAGE_PIXELS = saved
    with image:
        yield image


def _check_png(path: Path) -> None:
    """A PNG's declared size (IHDR) against the most its deflate-compressed data can decode to."""
    with path.open("rb") as handle:
        head = handle.read(26)
    if len(head) < 26 or head[12:16] != b"IHDR":
        return
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    bits, samples = head[24], _PNG_SAMPLES.get(head[25])
    if not samples:
        return
    row_bytes = 1 + -(-width * samples * bits // 8)  # a filter byte, then the packed samples
    check_stored(str(path), (height, row_bytes), 1, path.stat().st_size, "deflate",
                 f"{width}×{height} pixels × {samples} sample(s) × {bits} bits")


def _to_array(image: Image.Image) -> tuple[np.ndarray, tuple[float, float] | None]:
    mode = image.mode
    if mode in _GRAY_MODES:
        array = np.asarray(image)
    elif mode == "LA":
        array = np.asarray(image.convert("L"))
    else:  # RGB, RGBA, P, CMYK, YCbCr ...: colour photographs
        array = np.asarray(image.convert("RGB"))
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        top = 65535.0 if info.max > 65535 and array.max() <= 65535 else float(info.max)
        return array, (0.0, top)
    return array, None
