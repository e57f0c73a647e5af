"""Patch tokens beside the embedding table: the input of the attentive probe.

Tokens are large — T × D per sample, 256 × 384 for DINOv2 ViT-S/14 at 224 px, 256 × 1024 for ViT-L — so they are
kept as float16, cached in safetensors shards keyed exactly like the pooled vectors (written to a temporary name,
fsynced and renamed, like the vector shards, and carrying a checksum verified whenever a shard is loaded: see
`medprobe.embed.integrity`), and assembled into one `.npy` array beside the table whose rows follow the table's rows.
That array is written with plain buffered writes, never through a memory map (a full disk under a writable map is a
SIGBUS, not an error); readers memory-map it, so a probe touches only the rows it trains on.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save

from medprobe.embed.cache import file_digest
from medprobe.embed.files import atomic_write, shard_name
from medprobe.embed.integrity import CHECKSUM_KEY, content_checksum
from medprobe.embed.shards import ShardHeader, ShardStore
from medprobe.errors import MedprobeError

log = logging.getLogger("medprobe.embed")

TOKENS_SUFFIX = ".tokens.npy"
#: Table metadata key that names the tokens file and its shape; a table without it has no tokens.
TOKENS_METADATA_KEY = "tokens"
_COPY_ROWS = 512
_DTYPE = np.dtype("<f2")


def tokens_path(table_path: Path) -> Path:
    """`embeddings/dinov2_vits14.parquet` → `embeddings/dinov2_vits14.tokens.npy`."""
    return table_path.with_name(table_path.stem + TOKENS_SUFFIX)


class TokenCache(ShardStore):
    """Maps cache keys to (T, D) float16 token arrays in safetensors shards; `put` appends one shard atomically.

    Shard files carry their keys and checksum in the safetensors header, so indexing a cache reads headers only;
    `read` verifies a shard when it loads it, as `ShardCache.read_vectors` does (`ShardStore`).
    """

    suffix = ".safetensors"
    open_shards = 2
    mismatch_reason = "header differs from the one indexed"

    def __init__(self, directory: Path) -> None:
        self._shapes: dict[Path, tuple[int, int]] = {}
        super().__init__(directory)

    def shape(self, key: str) -> tuple[int, int]:
        """(T, D) of a cached key, from the shard header."""
        return self._shapes[self._index.rows[key][0]]

    def read(self, keys: Sequence[str]) -> np.ndarray:
        """(len(keys), T, D) float16 in the order given; every key must be cached with the same shape."""
        return self._rows(keys)

    def put(self, tokens: dict[str, np.ndarray]) -> None:
        """One shard per distinct token shape (2D models on volumes of different depths can differ)."""
        by_shape: dict[tuple[int, ...], list[str]] = {}
        for key, array in tokens.items():
            by_shape.setdefault(array.shape, []).append(key)
        for keys in by_shape.values():
            stacked = np.stack([tokens[key].astype(_DTYPE) for key in keys])
            checksum = content_checksum(keys, stacked)
            data = save({"tokens": stacked}, metadata={"keys": json.dumps(keys), CHECKSUM_KEY: checksum})
            final = shard_name(self.directory, self.suffix)
            with atomic_write(final, len(data), "a patch-token cache shard") as pending:
                pending.path.write_bytes(data)
            self._register(final, ShardHeader(keys, checksum, stacked.shape[1:]))

    def _register(self, shard: Path, header: ShardHeader) -> None:
        self._shapes[shard] = (int(header.shape[0]), int(header.shape[1]))
        super()._register(shard, header)

    def _forget(self, shard: Path) -> None:
        super()._forget(shard)
        self._shapes.pop(shard, None)

    def _read_header(self, shard: Path) -> ShardHeader:
        with safe_open(shard, framework="numpy") as handle:
            metadata = handle.metadata() or {}
            keys = json.loads(metadata["keys"])
            shape = tuple(handle.get_slice("tokens").get_shape()[1:])
        if set(metadata) - {"keys", CHECKSUM_KEY} or len(shape) != 2:
            raise ValueError("unexpected header")
        return ShardHeader(keys, metadata.get(CHECKSUM_KEY), shape)

    def _read_values(self, shard: Path) -> tuple[list[str], np.ndarray]:
        with safe_open(shard, framework="numpy") as handle:
            keys = json.loads((handle.metadata() or {})["keys"])
            return keys, handle.get_tensor("tokens")

    def _matches_index(self, shard: Path, array: np.ndarray) -> bool:
        return array.shape[1:] == self._shapes[shard]


def write_tokens(path: Path, cache: TokenCache, keys: Sequence[str]) -> dict[str, object] | None:
    """Assemble the tokens of `keys`, in order, into `path` (written whole with buffered writes, then renamed);
    returns the table metadata entry, or None — with a warning, and no file — when the samples' token shapes
    differ. Raises ShardUnusable, leaving no file, when a cache shard turns out damaged."""
    if not keys:
        return None
    shapes = {cache.shape(key) for key in keys}
    if len(shapes) > 1:
        log.warning("patch tokens not written: samples have different token shapes %s (2D model on volumes of "
                    "different depth?); the attentive probe needs one shape", sorted(shapes))
        return None
    (count, width), = shapes
    header = {"descr": np.lib.format.dtype_to_descr(_DTYPE), "fortran_order": False,
              "shape": (len(keys), count, width)}
    needed = len(keys) * count * width * _DTYPE.itemsize + 128
    digest = hashlib.sha256()
    with atomic_write(path, needed, "the patch tokens file") as pending, pending.path.open("wb") as handle:
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(head, header)
        for chunk in _chunks(head.getvalue(), cache, keys):
            digest.update(chunk)
            handle.write(chunk)
    return {"file": path.name, "shape": [len(keys), count, width], "dtype": "float16", "sha256": digest.hexdigest()}


def _chunks(header: bytes, cache: TokenCache, keys: Sequence[str]) -> Iterator[bytes | memoryview]:
    """The bytes of the tokens file: the .npy header, then the rows of `keys` in order, a few hundred at a time."""
    yield header
    for start in range(0, len(keys), _COPY_ROWS):
        rows = np.ascontiguousarray(cache.read(keys[start : start + _COPY_ROWS]), dtype=_DTYPE)
        yield rows.reshape(-1).view(np.uint8).data


def read_tokens(table_path: Path, metadata: dict[str, object]) -> np.ndarray | None:
    """The memory-mapped (n, T, D) tokens of a table whose metadata names them, else None. The file's sha256,
    recorded in the table's metadata (which the table's own digest covers), is checked first: a damaged tokens file
    never reaches a probe. Files written before the digest existed are read with a warning."""
    entry = metadata.get(TOKENS_METADATA_KEY)
    if not isinstance(entry, dict):
        return None
    path = table_path.with_name(str(entry["file"]))
    if not path.is_file():
        raise MedprobeError(f"{table_path}: its patch tokens file {path.name} is missing; re-run the embedding")
    _verify(path, entry.get("sha256"))
    tokens = np.load(path, mmap_mode="r")
    if list(tokens.shape) != list(entry["shape"]):
        raise MedprobeError(f"{path}: shape {tokens.shape} does not match the table's {entry['shape']}; "
                            "re-run the embedding")
    return tokens


def _verify(path: Path, expected: object) -> None:
    if not isinstance(expected, str):
        log.warning("%s predates patch-token digests and is used unverified; re-run the embedding to add one", path)
        return
    if file_digest(path) != expected:
        raise MedprobeError(f"{path}: damaged patch tokens file (its sha256 differs from the one recorded in the "
                            "table); re-run `medprobe embed` or `medprobe run`, which rebuild it from the cache")
