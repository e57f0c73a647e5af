"""The embedding table: the seam between expensive extraction and cheap evaluation.

Columns: sample_id, subject_id (pseudonymised), site, split (optional), label columns, embedding
(list<float32>). Schema metadata under the key `medprobe` records the encoder fingerprint, the preprocessing
description, the precision and the medprobe version.

Tables are written one row group at a time (`write_table_chunks`), so assembling a table for a million samples
holds one chunk of vectors in memory, never all of them.

Every table medprobe writes carries a digest of its data (`medprobe.embed.integrity.TableDigest`: each column's
values, the embedding vectors included, in row order; the row count; the schema's metadata — medprobe's and the
pandas metadata that shapes the frame read back), and every reader checks the columns it read against it: a
damaged table is a `DamagedTableError` (exit 2), never numbers. The digest is Parquet key-value metadata added as
the writer closes (`ParquetWriter.add_key_value_metadata`), after the last row group: it is computed as the chunks
stream through, travels inside the file it describes (a copy, a move or an upload cannot separate them, as a
sidecar file could be separated), and the whole file is still published by one atomic rename. A table without a
digest (written by an older medprobe, or by another tool for `medprobe evaluate`) is read with a warning that its
values are unverified.

A table in a job's workdir is rebuilt from the cache by every `medprobe run` and `medprobe embed` (the engine
never reuses a table it finds), so a damaged one is replaced there, never read.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from medprobe import __version__
from medprobe.embed.files import atomic_write
from medprobe.embed.integrity import CHECKSUM_KEY, TableDigest, json_digest
from medprobe.errors import MedprobeError

log = logging.getLogger("medprobe.embed")

METADATA_KEY = b"medprobe"
#: Footer key of the data digest: JSON {"rows": n, "schema_metadata": digest, "columns": {name: digest}}.
DIGEST_KEY = CHECKSUM_KEY.encode()
REQUIRED = ("sample_id", "subject_id", "embedding")
EMBEDDING_TYPE = pa.list_(pa.float32())


class DamagedTableError(MedprobeError):
    """An embedding table cannot be read, or its values differ from the digest written with them."""

    def __init__(self, path: Path, what: str) -> None:
        super().__init__(f"{path}: damaged embedding table ({what}); re-run `medprobe embed` or `medprobe run`, "
                         "which rebuild it from their cache (a table of your own: write it again)")


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
    digest = TableDigest()
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
            _write_rows(writer, digest, pa.Table.from_arrays([*arrays, _list_array(chunk)], schema=schema))
            start = stop
        if start != len(columns):
            raise ValueError(f"vector chunks hold {start} rows for a table of {len(columns)}")
        if start == 0:
            _write_rows(writer, digest, schema.empty_table())
        record = {"rows": digest.rows, "schema_metadata": _schema_digest(schema), "columns": digest.columns()}
        writer.add_key_value_metadata({DIGEST_KEY: json.dumps(record)})


def _write_rows(writer: pq.ParquetWriter, digest: TableDigest, rows: pa.Table) -> None:
    writer.write_table(rows)
    digest.update(rows)


def _list_array(matrix: np.ndarray) -> pa.Array:
    matrix = np.ascontiguousarray(matrix, dtype=np.float32)
    if matrix.size == 0:
        return pa.array([[]] * len(matrix), type=EMBEDDING_TYPE)
    offsets = np.arange(0, matrix.size + 1, matrix.shape[1], dtype=np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(matrix.reshape(-1), type=pa.float32()))


def read_table(path: Path) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """Return (columns without the embedding, embeddings as an (n, d) float32 array, metadata), verified."""
    table, metadata = _open(path)
    return table.drop_columns(["embedding"]).to_pandas(), _matrix(path, table.column("embedding")), metadata


def read_embeddings(path: Path) -> np.ndarray:
    """Only the (n, d) float32 embedding matrix of a table, in row order, verified."""
    table, _ = _open(path, ["embedding"])
    return _matrix(path, table.column("embedding"))


def read_metadata(path: Path) -> dict[str, Any]:
    """The medprobe metadata of a table (encoder, precision, preprocessing, tokens), from the footer only;
    verified against the table's digest when it has one (the data readers say when it has none)."""
    with _parquet(path) as parquet:
        schema, record = parquet.schema_arrow, _record(path, parquet)
    if record is not None:
        _verify_schema(path, schema, record)
    return _metadata(path, schema)


def _parquet(path: Path) -> pq.ParquetFile:
    if not path.is_file():
        raise MedprobeError(f"{path}: embedding table not found")
    try:
        return pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise DamagedTableError(path, f"not a readable Parquet file: {type(exc).__name__}: {exc}") from None


def _open(path: Path, columns: list[str] | None = None) -> tuple[pa.Table, dict[str, Any]]:
    """The table's `columns` (all by default) and its metadata, checked against its digest."""
    with _parquet(path) as parquet:
        try:
            table = parquet.read(columns=columns)
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise DamagedTableError(path, f"unreadable data: {type(exc).__name__}: {exc}") from None
        record = _record(path, parquet)
    _verify(path, table, record, every_column=columns is None)
    missing = [c for c in (columns or REQUIRED) if c not in table.column_names]
    if missing:
        raise MedprobeError(f"{path}: missing column(s) {missing}; found {table.column_names}")
    return table, _metadata(path, table.schema)


def _verify(path: Path, table: pa.Table, record: dict[str, Any] | None, every_column: bool) -> None:
    """Raise DamagedTableError unless the rows, the schema's metadata and each column read match the record."""
    if record is None:
        log.warning("%s: embedding table without a data digest (written by an older medprobe or another tool); its "
                    "values are used unverified", path)
        return
    if table.num_rows != record.get("rows"):
        raise DamagedTableError(path, f"{table.num_rows} rows where {record.get('rows')} were written")
    _verify_schema(path, table.schema, record)
    digest = TableDigest()
    digest.update(table)
    found, expected = digest.columns(), record.get("columns")
    if not isinstance(expected, dict):
        raise DamagedTableError(path, "its digest record is malformed")
    names = set(found) | set(expected) if every_column else set(found)
    differing = sorted(name for name in names if found.get(name) != expected.get(name))
    if differing:
        raise DamagedTableError(path, f"column(s) {', '.join(differing)} differ from the digest written with them")


def _verify_schema(path: Path, schema: pa.Schema, record: dict[str, Any]) -> None:
    if record.get("schema_metadata") != _schema_digest(schema):
        raise DamagedTableError(path, "its metadata differ from the digest written with them")


def _schema_digest(schema: pa.Schema) -> str:
    """Digest of the schema's metadata (medprobe's and pandas'), byte for byte (latin-1 maps bytes to text). A
    table read whole also shows the footer's digest record among them, which is no part of it."""
    metadata = {k: v for k, v in (schema.metadata or {}).items() if k != DIGEST_KEY}
    return json_digest({k.decode("latin-1"): v.decode("latin-1") for k, v in metadata.items()})


def _record(path: Path, parquet: pq.ParquetFile) -> dict[str, Any] | None:
    """The digest record in the footer; None for a table written without one."""
    raw = (parquet.metadata.metadata or {}).get(DIGEST_KEY)
    if raw is None:
        return None
    try:
        record = json.loads(raw)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raise DamagedTableError(path, "its digest record is unreadable")
    return record


def _metadata(path: Path, schema: pa.Schema) -> dict[str, Any]:
    raw_meta = (schema.metadata or {}).get(METADATA_KEY)
    try:
        return json.loads(raw_meta) if raw_meta else {}
    except ValueError:
        raise DamagedTableError(path, "its medprobe metadata are not JSON") from None


def _matrix(path: Path, column: pa.ChunkedArray) -> np.ndarray:
    vectors = column.combine_chunks()
    if not isinstance(vectors, pa.ListArray):  # large_list or fixed_size_list written by another tool
        vectors = vectors.cast(EMBEDDING_TYPE)
    lengths = set(np.diff(vectors.offsets.to_numpy()).tolist())
    if len(lengths) > 1:
        raise MedprobeError(f"{path}: embeddings have different lengths {sorted(lengths)[:5]}")
    dim = lengths.pop() if lengths else 0
    return np.asarray(vectors.flatten().to_numpy(zero_copy_only=False), dtype=np.float32).reshape(len(vectors), dim)
