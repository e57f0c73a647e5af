"""A content-addressed embedding cache in Parquet shards, safe against being killed at any moment.

A shard is written to a temporary name, fsynced and renamed into place, so a shard either exists whole or not at
all; a job killed with SIGKILL loses at most the samples it had not yet flushed. Shard names are random, so
several writers (ranks of one torchrun job, or two jobs) can share a cache directory.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

log = logging.getLogger("medprobe.embed")

_CHUNK = 1 << 22
#: Shards whose embedding column stays in memory while a table is assembled (each is about shard_samples × d).
_OPEN_SHARDS = 8


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


def new_shard(directory: Path, suffix: str) -> tuple[Path, Path]:
    """A fresh random shard name in `directory` and the temporary name to write it under first."""
    final = directory / f"shard-{uuid.uuid4().hex}{suffix}"
    return final, final.with_name(f".tmp-{final.name}")


def publish(temporary: Path, final: Path) -> None:
    """Make a fully written file visible under its final name: fsync, then an atomic rename."""
    with temporary.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, final)


def cache_key(encoder_fingerprint: str, preprocessing: str, precision: str, content_digest: str) -> str:
    text = "\n".join([encoder_fingerprint, preprocessing, precision, content_digest])
    return hashlib.sha256(text.encode()).hexdigest()


class ShardCache:
    """Maps cache keys to float32 vectors; `put` appends one shard atomically.

    Only the keys are indexed in memory; vectors stay on disk until `read_vectors` asks for them. A shard that
    cannot be read (a truncated copy, a full disk) is ignored with a warning: its samples are simply recomputed.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, tuple[Path, int]] = {}
        self._seen: set[Path] = set()
        self._open: OrderedDict[Path, np.ndarray] = OrderedDict()
        self.refresh()

    def refresh(self) -> None:
        """Index shards written since the last look (by other processes sharing the directory)."""
        for shard in sorted(self.directory.glob("shard-*.parquet")):
            if shard in self._seen:
                continue
            self._seen.add(shard)
            try:
                keys = pq.read_table(shard, columns=["key"]).column("key").to_pylist()
            except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a damaged file
                log.warning("ignoring unreadable cache shard %s (%s)", shard.name, type(exc).__name__)
                continue
            for row, key in enumerate(keys):
                self._index.setdefault(key, (shard, row))

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def read_vectors(self, keys: Sequence[str]) -> np.ndarray:
        """The (len(keys), d) float32 matrix of cached vectors, in the order given; every key must be cached.

        Keeps the last few shards' columns open, so reading a table's rows in order touches each shard about once.
        """
        if not keys:
            return np.zeros((0, 0), np.float32)
        rows = [self._shard_rows(self._index[key][0])[self._index[key][1]] for key in keys]
        return np.stack(rows)

    def get_many(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        """Vectors for the given keys that are cached."""
        wanted = [key for key in keys if key in self._index]
        return dict(zip(wanted, self.read_vectors(wanted), strict=True)) if wanted else {}

    def _shard_rows(self, shard: Path) -> np.ndarray:
        if shard in self._open:
            self._open.move_to_end(shard)
            return self._open[shard]
        column = pq.read_table(shard, columns=["embedding"]).column("embedding").combine_chunks()
        offsets = column.offsets.to_numpy()
        dim = int(offsets[1] - offsets[0]) if len(offsets) > 1 else 0
        matrix = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
        self._open[shard] = matrix
        if len(self._open) > _OPEN_SHARDS:
            self._open.popitem(last=False)
        return matrix

    def put(self, vectors: dict[str, np.ndarray]) -> None:
        if not vectors:
            return
        keys = list(vectors)
        matrix = np.stack([np.asarray(vectors[k], dtype=np.float32) for k in keys])
        flat = pa.array(matrix.reshape(-1), type=pa.float32())
        offsets = pa.array(np.arange(0, matrix.size + 1, matrix.shape[1], dtype=np.int32), type=pa.int32())
        embeddings = pa.ListArray.from_arrays(offsets, flat)
        table = pa.table({"key": pa.array(keys, type=pa.string()), "embedding": embeddings})
        final, temporary = new_shard(self.directory, ".parquet")
        pq.write_table(table, temporary)
        publish(temporary, final)
        self._seen.add(final)
        for row, key in enumerate(keys):
            self._index.setdefault(key, (final, row))
