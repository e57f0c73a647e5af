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
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from medprobe.embed.files import atomic_write, shard_name
from medprobe.embed.integrity import CHECKSUM_KEY, ShardUnusable, content_checksum
from medprobe.embed.shards import ShardHeader, ShardStore
from medprobe.io.regular import open_regular

_CHUNK = 1 << 22
_CHECKSUM = CHECKSUM_KEY.encode()


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (of every file, in name order, for a folder such as a DICOM series)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(str(file.relative_to(path)).encode())
        with open_regular(file) as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()


def cache_key(encoder_fingerprint: str, preprocessing: str, precision: str, content_digest: str) -> str:
    text = "\n".join([encoder_fingerprint, preprocessing, precision, content_digest])
    return hashlib.sha256(text.encode()).hexdigest()


class ShardCache(ShardStore):
    """Maps cache keys to float32 vectors in Parquet shards; `put` appends one shard atomically.

    Only the keys are indexed in memory; vectors stay on disk until `read_vectors` asks for them, and are verified
    against the shard's checksum then (`ShardStore`).
    """

    suffix = ".parquet"
    open_shards = 8  # each is about shard_samples × d floats

    def read_vectors(self, keys: Sequence[str]) -> np.ndarray:
        """The (len(keys), d) float32 matrix of cached vectors, in the order given; every key must be cached.
        Raises ShardUnusable when a shard holding one of the keys turns out damaged."""
        if not keys:
            return np.zeros((0, 0), np.float32)
        return self._rows(keys)

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors for the given keys that are cached in shards that pass their checksum."""
        keys = list(keys)
        while True:
            wanted = [key for key in keys if key in self._index.rows]
            try:
                return dict(zip(wanted, self.read_vectors(wanted), strict=True)) if wanted else {}
            except ShardUnusable:
                continue  # its keys left the index; read the rest

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
        final = shard_name(self.directory, self.suffix)
        needed = matrix.nbytes + sum(len(key) + 4 for key in keys)
        with atomic_write(final, needed, "an embedding cache shard") as pending:
            pq.write_table(table, pending.path)
        self._register(final, ShardHeader(keys, checksum))

    def _read_header(self, shard: Path) -> ShardHeader:
        with pq.ParquetFile(shard) as shard_file:
            if not _expected_columns(shard_file.schema_arrow):
                raise ValueError("unexpected columns")
            keys_table = shard_file.read(columns=["key"])
            keys = keys_table.column("key").to_pylist()
            if not keys or len(keys) != shard_file.metadata.num_rows:
                raise ValueError("key count differs from the row count")
        metadata = keys_table.schema.metadata or {}
        if metadata and _CHECKSUM not in metadata:  # not an old shard (those have none): a damaged footer
            raise ShardUnusable(shard, "checksum missing")
        return ShardHeader(keys, metadata[_CHECKSUM].decode(errors="replace") if metadata else None)

    def _read_values(self, shard: Path) -> tuple[list[str], np.ndarray]:
        table = pq.read_table(shard)
        return table.column("key").to_pylist(), _matrix(table.column("embedding"))


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
