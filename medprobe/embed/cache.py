"""A content-addressed embedding cache in Parquet shards, safe against being killed at any moment.

A shard is written to a temporary name, fsynced and renamed into place (`medprobe.embed.files`), so a shard either
exists whole or not at all; a job killed with SIGKILL loses at most the samples it had not yet flushed. Shard names
are random, so several writers (ranks of one torchrun job, or two jobs) can share a cache directory.

Each shard carries a checksum of its keys and vectors (`medprobe.embed.integrity`), verified whenever its vectors
are loaded: a damaged shard is moved aside with a warning and raises `ShardUnusable`, upon which the engine
recomputes its samples.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from medprobe.embed.files import atomic_write, shard_name
from medprobe.embed.integrity import (
    CHECKSUM_KEY,
    ShardUnusable,
    content_checksum,
    damaged_shards,
    note_unverified,
    set_aside,
    verify,
)

log = logging.getLogger("medprobe.embed")

_CHUNK = 1 << 22
#: Shards whose embedding column stays in memory while a table is assembled (each is about shard_samples × d).
_OPEN_SHARDS = 8
_CHECKSUM = CHECKSUM_KEY.encode()


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (of every file, in name order, for a folder such as a DICOM series)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with file.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def cache_key(encoder_fingerprint: str, preprocessing: str, precision: str, content_digest: str) -> str:
    text = "\n".join([encoder_fingerprint, preprocessing, precision, content_digest])
    return hashlib.sha256(text.encode()).hexdigest()


class ShardIndex:
    """Which shard and row holds each key, rebuilt when a shard is dropped (another shard may hold the same key).

    Shared by the vector and token caches; the first shard indexed for a key wins.
    """

    def __init__(self) -> None:
        self.rows: dict[str, tuple[Path, int]] = {}
        self.shards: dict[Path, list[str]] = {}

    def add(self, shard: Path, keys: list[str]) -> None:
        self.shards[shard] = keys
        for row, key in enumerate(keys):
            self.rows.setdefault(key, (shard, row))

    def drop(self, shard: Path) -> None:
        if self.shards.pop(shard, None) is None:
            return
        self.rows = {}
        for other, keys in self.shards.items():
            for row, key in enumerate(keys):
                self.rows.setdefault(key, (other, row))

    def vanished(self, present: set[Path]) -> list[Path]:
        """Indexed shards no longer on disk (moved aside or removed by another process)."""
        return [shard for shard in self.shards if shard not in present]


class ShardCache:
    """Maps cache keys to float32 vectors; `put` appends one shard atomically.

    Only the keys are indexed in memory; vectors stay on disk until `read_vectors` asks for them, and are verified
    against the shard's checksum then. A key in the cache is therefore a promise that reading may break:
    `read_vectors` raises `ShardUnusable` for a damaged shard (after moving it aside and dropping its keys), and
    the engine recomputes those samples. A shard whose keys cannot even be read is moved aside when indexed.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._index = ShardIndex()
        self._checksums: dict[Path, str | None] = {}
        self._seen: set[Path] = set()
        self._open: OrderedDict[Path, np.ndarray] = OrderedDict()
        self.refresh()
        note_unverified(directory, sum(1 for c in self._checksums.values() if c is None))

    def refresh(self) -> None:
        """Index shards written since the last look (by other processes sharing the directory), and forget those
        that went away."""
        present = set(self.directory.glob("shard-*.parquet"))
        for shard in self._index.vanished(present):
            self._forget(shard)
        for shard in sorted(present - self._seen):
            self._seen.add(shard)
            try:
                with pq.ParquetFile(shard) as shard_file:
                    if not _expected_columns(shard_file.schema_arrow):
                        raise ValueError("unexpected columns")
                    keys_table = shard_file.read(columns=["key"])
                    keys = keys_table.column("key").to_pylist()
                    if not keys or len(keys) != shard_file.metadata.num_rows:
                        raise ValueError("key count differs from the row count")
            except FileNotFoundError:
                continue
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
                set_aside(shard, f"unreadable: {type(exc).__name__}")
                continue
            metadata = keys_table.schema.metadata or {}
            if metadata and _CHECKSUM not in metadata:  # not an old shard (those have none): a damaged footer
                set_aside(shard, "checksum missing")
                continue
            self._checksums[shard] = metadata[_CHECKSUM].decode(errors="replace") if metadata else None
            self._index.add(shard, keys)

    def __contains__(self, key: str) -> bool:
        return key in self._index.rows

    def __len__(self) -> int:
        return len(self._index.rows)

    def read_vectors(self, keys: Sequence[str]) -> np.ndarray:
        """The (len(keys), d) float32 matrix of cached vectors, in the order given; every key must be cached.

        Keeps the last few shards' columns open, so reading a table's rows in order touches each shard about once.
        Raises ShardUnusable when a shard holding one of the keys turns out damaged.
        """
        if not keys:
            return np.zeros((0, 0), np.float32)
        rows = self._index.rows
        return np.stack([self._shard_rows(rows[key][0])[rows[key][1]] for key in keys])

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors for the given keys that are cached in shards that pass their checksum."""
        keys = list(keys)
        while True:
            wanted = [key for key in keys if key in self._index.rows]
            try:
                return dict(zip(wanted, self.read_vectors(wanted), strict=True)) if wanted else {}
            except ShardUnusable:
                continue  # its keys left the index; read the rest

    def verify(self, keys: Iterable[str]) -> list[Path]:
        """Load every shard holding one of `keys`, moving the damaged ones aside; returns those."""
        return damaged_shards(dict.fromkeys(self._index.rows[key][0] for key in keys if key in self._index.rows),
                              self._shard_rows)

    def _shard_rows(self, shard: Path) -> np.ndarray:
        if shard in self._open:
            self._open.move_to_end(shard)
            return self._open[shard]
        try:
            table = pq.read_table(shard)
            keys = table.column("key").to_pylist()
            matrix = _matrix(table.column("embedding"))
            if keys != self._index.shards[shard]:
                raise ShardUnusable(shard, "keys differ from those indexed")
            verify(shard, keys, matrix, self._checksums.get(shard))
        except FileNotFoundError:
            self._forget(shard)
            raise ShardUnusable(shard, "gone") from None
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
            reason = exc.reason if isinstance(exc, ShardUnusable) else f"unreadable: {type(exc).__name__}"
            self._forget(shard)
            set_aside(shard, reason)
            raise ShardUnusable(shard, reason) from None
        self._open[shard] = matrix
        if len(self._open) > _OPEN_SHARDS:
            self._open.popitem(last=False)
        return matrix

    def _forget(self, shard: Path) -> None:
        self._index.drop(shard)
        self._open.pop(shard, None)
        self._checksums.pop(shard, None)

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        if not vectors:
            return
        keys = list(vectors)
        matrix = np.stack([np.asarray(vectors[k], dtype=np.float32) for k in keys])
        checksum = content_checksum(keys, matrix)
        flat = pa.array(matrix.reshape(-1), type=pa.float32())
        offsets = pa.array(np.arange(0, matrix.size + 1, matrix.shape[1], dtype=np.int32), type=pa.int32())
        embeddings = pa.ListArray.from_arrays(offsets, flat)
        table = pa.table({"key": pa.array(keys, type=pa.string()), "embedding": embeddings},
                         metadata={_CHECKSUM: checksum.encode()})
        final = shard_name(self.directory, ".parquet")
        needed = matrix.nbytes + sum(len(key) + 4 for key in keys)
        with atomic_write(final, needed, "an embedding cache shard") as pending:
            pq.write_table(table, pending.path)
        self._seen.add(final)
        self._checksums[final] = checksum
        self._index.add(final, keys)


def _expected_columns(schema: pa.Schema) -> bool:
    """key: string, embedding: list<float32> — what every shard holds; anything else is a damaged footer."""
    if schema.names != ["key", "embedding"] or schema.field("key").type != pa.string():
        return False
    embedding = schema.field("embedding").type
    return pa.types.is_list(embedding) and embedding.value_type == pa.float32()


def _matrix(column: pa.ChunkedArray) -> np.ndarray:
    vectors = column.combine_chunks()
    offsets = vectors.offsets.to_numpy()
    dim = int(offsets[1] - offsets[0]) if len(offsets) > 1 else 0
    return np.asarray(vectors.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
