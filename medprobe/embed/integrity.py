"""Checksums of what medprobe reads back — cache shards, embedding tables, probe heads — and what becomes of a
cache shard that fails its own. This module is the one place that says how values are hashed; the files' owners
(`shards`, `table`, `medprobe.transfer.head_files`) decide where a digest is kept and what a mismatch means.

A cache shard's checksum is the sha256 of its keys, the dtype and shape of its array and the array's bytes, stored
inside the shard (Parquet schema metadata for vector shards, the safetensors header for token shards). The caches
verify it whenever they load a shard's values, so a value from a truncated, bit-flipped or otherwise damaged shard
is never used: the shard is reported once (a warning naming the file), moved aside into `corrupt/` beside it with
a timestamp (kept for inspection, never read again), and its samples are recomputed.

Shards written before checksums existed carry none. They were written whole (fsync, then rename) and are still
read, so an existing cache is not recomputed at the cost of hours of GPU time; a cache notes once how many such
shards it holds. Delete them (or the whole cache folder) to have them recomputed with checksums.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger("medprobe.embed")

#: Metadata key of the checksum, in both shard formats.
CHECKSUM_KEY = "medprobe.sha256"
#: Folder, inside a cache folder, that damaged shards are moved into.
CORRUPT_FOLDER = "corrupt"


class ShardUnusable(Exception):
    """A shard's values cannot be trusted (damaged, or gone); its keys have been dropped from the cache's index."""

    def __init__(self, shard: Path, reason: str) -> None:
        super().__init__(f"{shard.name}: {reason}")
        self.shard = shard
        self.reason = reason


def content_checksum(keys: Sequence[str], array: np.ndarray) -> str:
    """sha256 over the keys, the array's little-endian dtype and shape, and its bytes."""
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    digest = hashlib.sha256(json.dumps(list(keys)).encode())
    digest.update(f"{data.dtype.str}{data.shape}".encode())
    digest.update(data.reshape(-1).view(np.uint8).data)
    return digest.hexdigest()


def verify(shard: Path, keys: Sequence[str], array: np.ndarray, expected: str | None) -> None:
    """Raise ShardUnusable when the shard has a checksum and its content does not match it."""
    if expected is not None and content_checksum(keys, array) != expected:
        raise ShardUnusable(shard, "checksum mismatch")


def set_aside(shard: Path, reason: str) -> None:
    """Move a damaged shard into `corrupt/` (timestamped) and warn once; quiet when another process already did."""
    folder = shard.parent / CORRUPT_FOLDER
    target = folder / f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}-{shard.name}"
    try:
        folder.mkdir(exist_ok=True)
        os.rename(shard, target)
    except FileNotFoundError:
        return  # another process sharing the cache moved it (and said so)
    except OSError as exc:
        log.warning("damaged cache shard %s (%s) could not be moved aside (%s); it is ignored and its samples are "
                    "recomputed", shard, reason, exc.strerror)
        return
    log.warning("damaged cache shard %s (%s): moved to %s; its samples are recomputed", shard, reason, target)


def note_unverified(directory: Path, count: int) -> None:
    if count:
        log.warning("%d cache shard(s) in %s predate shard checksums and are used unverified; delete them to have "
                    "their samples recomputed with checksums", count, directory)


def json_digest(value: object) -> str:
    """sha256 of `value` as canonical JSON (sorted keys, no spaces): equal for equal values however they were laid
    out on disk, so a record can hold the digest of its own other fields."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


class TableDigest:
    """sha256 of each column's values, fed a chunk of rows at a time (a table is written row group by row group).

    The digest is of values, not of Parquet bytes, so a reader recomputes it from what it decoded, and it does not
    depend on how the rows were chunked: each column keeps separate streams (null positions, lengths, values),
    each growing in row order. Nulls count by position; the bytes under a null never do. The value type counts too
    (the same bytes read as another type are other values); a dictionary column counts as its decoded values.
    """

    def __init__(self) -> None:
        self.rows = 0
        self._columns: dict[str, _ArrayDigest] = {}

    def update(self, table: pa.Table) -> None:
        for name, column in zip(table.column_names, table.columns, strict=True):
            digest = self._columns.setdefault(name, _ArrayDigest())
            for chunk in column.chunks:
                digest.update(chunk)
        self.rows += table.num_rows

    def columns(self) -> dict[str, str]:
        """Column name → hex digest of its values."""
        return {name: digest.hexdigest() for name, digest in self._columns.items()}


class _ArrayDigest:
    """The streams of one column (and, for lists, of their values), each independent of chunk boundaries."""

    def __init__(self) -> None:
        self.rows = 0
        self.types: set[str] = set()
        self.nulls = hashlib.sha256()  # row positions of nulls, int64
        self.lengths = hashlib.sha256()  # lengths of strings and lists, int64
        self.values = hashlib.sha256()  # fixed-width values (zeros under nulls) or string bytes
        self.child: _ArrayDigest | None = None  # the values of a list column

    def update(self, array: pa.Array) -> None:
        if pa.types.is_dictionary(array.type):
            array = array.dictionary_decode()
        if array.null_count:
            self.nulls.update(_little(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False)) + self.rows))
        self.rows += len(array)
        if pa.types.is_list(array.type) or pa.types.is_large_list(array.type) \
                or pa.types.is_fixed_size_list(array.type):
            self._update_list(array)
        else:
            self.types.add(_type_name(array.type))
            self._update_values(array)

    def _update_list(self, array: pa.Array) -> None:
        self.types.add("list")  # the value type is the child's (Parquet renames a list's item field)
        self.lengths.update(_little(pc.fill_null(pc.list_value_length(array), 0).to_numpy()))
        self.child = self.child or _ArrayDigest()
        self.child.update(array.flatten())

    def _update_values(self, array: pa.Array) -> None:
        if pa.types.is_string(array.type) or pa.types.is_large_string(array.type) \
                or pa.types.is_binary(array.type) or pa.types.is_large_binary(array.type):
            self._update_binary(array.cast(pa.large_binary()))
        elif pa.types.is_boolean(array.type):
            self.values.update(pc.fill_null(array, False).to_numpy(zero_copy_only=False).astype(np.uint8).data)
        elif pa.types.is_null(array.type):
            pass  # every row is null: the positions say it all
        elif array.type.bit_width % 8 == 0:
            self.values.update(_fixed_width(array))
        else:
            raise TypeError(f"no canonical digest for Arrow type {array.type}")

    def _update_binary(self, array: pa.Array) -> None:
        if array.null_count:
            array = pc.fill_null(array, b"")  # drops whatever bytes a null slot was backed by
        _, offsets_buffer, data = array.buffers()
        offsets = np.frombuffer(offsets_buffer, dtype="<i8")[array.offset : array.offset + len(array) + 1]
        self.lengths.update(_little(np.diff(offsets)))
        if data is not None and len(offsets):
            self.values.update(memoryview(data)[offsets[0] : offsets[-1]])

    def hexdigest(self) -> str:
        digest = hashlib.sha256(json.dumps([self.rows, sorted(self.types)]).encode())
        for stream in (self.nulls, self.lengths, self.values):
            digest.update(stream.digest())
        digest.update((self.child.hexdigest() if self.child else "").encode())
        return digest.hexdigest()


def _type_name(value_type: pa.DataType) -> str:
    """The type as values go: string and large_string alike (Parquet may read back either), binary apart."""
    if pa.types.is_string(value_type) or pa.types.is_large_string(value_type):
        return "string"
    if pa.types.is_binary(value_type) or pa.types.is_large_binary(value_type):
        return "binary"
    return str(value_type)


def _little(values: np.ndarray) -> memoryview:
    return np.ascontiguousarray(values, dtype="<i8").data


def _fixed_width(array: pa.Array) -> bytes:
    """A fixed-width array's value bytes as Arrow lays them out (little-endian on the platforms medprobe runs on),
    zeroed under nulls."""
    if not len(array):
        return b""
    width = array.type.bit_width // 8
    raw = np.frombuffer(array.buffers()[1], dtype=np.uint8)[array.offset * width : (array.offset + len(array)) * width]
    if not array.null_count:
        return raw.tobytes()
    rows = raw.reshape(len(array), width).copy()
    rows[array.is_null().to_numpy(zero_copy_only=False)] = 0
    return rows.tobytes()
