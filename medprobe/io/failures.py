"""Which skip category a reading library's exception belongs to, from its type (never from its text)."""

from __future__ import annotations

import gzip
import zlib

#: Exceptions of a compressed stream that ends early or fails its checksum.
_COMPRESSION = (EOFError, zlib.error, gzip.BadGzipFile)


def failure_category(exc: BaseException) -> str:
    """'truncated-gzip' for a damaged compressed stream, 'unreadable-file' for an I/O error, else 'corrupt-data'."""
    if isinstance(exc, _COMPRESSION):
        return "truncated-gzip"
    if isinstance(exc, OSError) and exc.errno is not None:
        return "unreadable-file"
    return "corrupt-data"
