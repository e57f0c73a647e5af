"""The embedding table: the seam between expensive extraction and cheap evaluation.

Columns: sample_id, subject_id (pseudonymised), site, split (optional), label columns, embedding
(list<float32>). Schema metadata under the key `medprobe` records the encoder fingerprint, the preprocessing
description, the precision and the medprobe version.

Tables are written one row group at a time (`write_table_chunks`), so assembling a table for a million samples
holds one chunk of vectors in memory, never all of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from medprobe import __version__
from medprobe.embed.files import atomic_write
from medprobe.errors import MedprobeError

METADATA_KEY = b"medprobe"
REQUIRED = ("sample_id", "subject_id", "embedding")
EMBEDDING_TYPE = pa.list_(pa.float32())


def write_table(frame: pd.DataFrame, path: Path, metadata: dict[str, Any]) -> None:
    """Write a frame whose `embedding` column holds one vector per row (small tables, tests, imports)."""
    columns = frame.drop(columns=["embedding"])
    vectors = np.stack(frame["embedding"].to_numpy()).astype(np.float32) if len(frame) else np.zeros((0, 0))
    write_table_chunks(path, columns, [vectors], metadata)


def write_table_chunks(path: Path, columns: pd.DataFrame, vector_chunks: Iterable[np.ndarray],
                       metadata: dict[str, Any]) -> None:
    """Write atomically (a temporary file unique to this process, then a rename), one row group per chunk of
    vectors; a full disk is a DiskFullError and leaves no file behind (see medprobe.embed.files).

    `columns` holds every column but the embedding, one row per sample; the chunks' row counts, in order, must
    add up to its length.
    """
    base = pa.Schema.from_pandas(columns, preserve_index=False)
    meta = {**(base.metadata or {}), METADATA_KEY: json.dumps({"medprobe_version": __version__, **metadata})}
    schema = base.append(pa.field("embedding", EMBEDDING_TYPE)).with_metadata(meta)
    plain_bytes = int(columns.memory_usage(index=False, deep=True).sum())
    start = 0
    with atomic_write(path, plain_bytes, "the embedding table") as pending, \
            pq.ParquetWriter(pending.path, schema) as writer:
        for chunk in vector_chunks:
            stop = start + len(chunk)
            if stop > len(columns):
                raise ValueError(f"vector chunks hold more rows than the {len(columns)} table rows")
            if start == 0 and len(chunk):  # now the vectors' size is known
                pending.needed = plain_bytes + len(columns) * chunk[0].size * 4
            part = columns.iloc[start:stop]
            arrays = [pa.array(part[f.name], type=f.type, from_pandas=True) for f in base]
            writer.write_table(pa.Table.from_arrays([*arrays, _list_array(chunk)], schema=schema))
            start = stop
        if start != len(columns):
            raise ValueError(f"vector chunks hold {start} rows for a table of {len(columns)}")
        if start == 0:
            writer.write_table(schema.empty_table())


def _list_array(matrix: np.ndarray) -> pa.Array:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if matrix.size == 0:
        return pa.array([[]] * len(matrix), type=EMBEDDING_TYPE)
    offsets = np.arange(0, matrix.size + 1, matrix.shape[1], dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(matrix.reshape(-1), type=pa.float32()))


def read_table(path: Path) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """Return (columns without the embedding, embeddings as an (n, d) float32 array, metadata)."""
    table = _open(path)
    return table.drop_columns(["embedding"]).to_pandas(), _matrix(path, table.column("embedding")), _metadata(table)


def read_embeddings(path: Path) -> np.ndarray:
    """Only the (n, d) float32 embedding matrix of a table, in row order."""
    return _matrix(path, _open(path, ["embedding"]).column("embedding"))


def read_metadata(path: Path) -> dict[str, Any]:
    """The medprobe metadata of a table (encoder, precision, preprocessing, tokens), from the footer only."""
    if not path.is_file():
        raise MedprobeError(f"{path}: embedding table not found")
    raw_meta = (pq.read_schema(path).metadata or {}).get(METADATA_KEY)
    return json.loads(raw_meta) if raw_meta else {}


def _open(path: Path, columns: list[str] | None = None) -> pa.Table:
    if not path.is_file():
        raise MedprobeError(f"{path}: embedding table not found")
    try:
        table = pq.read_table(path, columns=columns)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise MedprobeError(f"{path}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    missing = [c for c in (columns or REQUIRED) if c not in table.column_names]
    if missing:
        raise MedprobeError(f"{path}: missing column(s) {missing}; found {table.column_names}")
    return table


def _metadata(table: pa.Table) -> dict[str, Any]:
    raw_meta = (table.schema.metadata or {}).get(METADATA_KEY)
    return json.loads(raw_meta) if raw_meta else {}


def _matrix(path: Path, column: pa.ChunkedArray) -> np.ndarray:
    vectors = column.combine_chunks()
    if not isinstance(vectors, pa.ListArray):  # large_list or fixed_size_list written by another tool
        vectors = vectors.cast(EMBEDDING_TYPE)
    lengths = set(np.diff(vectors.offsets.to_numpy()).tolist())
    if len(lengths) > 1:
        raise MedprobeError(f"{path}: embeddings have different lengths {sorted(lengths)[:5]}")
    dim = lengths.pop() if lengths else 0
    return np.asarray(vectors.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
