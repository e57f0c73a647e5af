"""Patch tokens beside the embedding table: the input of the attentive probe.

Tokens are large — T × D per sample, 256 × 384 for DINOv2 ViT-S/14 at 224 px, 256 × 1024 for ViT-L — so they are
kept as float16, cached in safetensors shards keyed exactly like the pooled vectors (written to a temporary name,
fsynced and renamed, like the vector shards), and assembled into one `.npy` array beside the table whose rows
follow the table's rows. Readers memory-map that array, so a probe touches only the rows it trains on.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from medprobe.embed.cache import new_shard, publish
from medprobe.errors import MedprobeError

log = logging.getLogger("medprobe.embed")

TOKENS_SUFFIX = ".tokens.npy"
#: Table metadata key that names the tokens file and its shape; a table without it has no tokens.
TOKENS_METADATA_KEY = "tokens"
_OPEN_SHARDS = 2
_COPY_ROWS = 512


def tokens_path(table_path: Path) -> Path:
    """`embeddings/dinov2_vits14.parquet` → `embeddings/dinov2_vits14.tokens.npy`."""
    return table_path.with_name(table_path.stem + TOKENS_SUFFIX)


class TokenCache:
    """Maps cache keys to (T, D) float16 token arrays; `put` appends one shard atomically.

    Shard files carry their keys in the safetensors header, so indexing a cache reads headers only.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._index: dict[str, tuple[Path, int]] = {}
        self._shapes: dict[Path, tuple[int, int]] = {}
        self._seen: set[Path] = set()
        self._open: OrderedDict[Path, np.ndarray] = OrderedDict()
        self.refresh()

    def refresh(self) -> None:
        """Index shards written since the last look (by other processes sharing the directory)."""
        for shard in sorted(self.directory.glob("shard-*.safetensors")):
            if shard in self._seen:
                continue
            self._seen.add(shard)
            try:
                with safe_open(shard, framework="numpy") as handle:
                    keys = json.loads((handle.metadata() or {})["keys"])
                    shape = tuple(handle.get_slice("tokens").get_shape()[1:])
            except Exception as exc:  # noqa: BLE001 - a damaged shard is recomputed, whatever the error type
                log.warning("ignoring unreadable token shard %s (%s)", shard.name, type(exc).__name__)
                continue
            self._add(shard, keys, shape)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def shape(self, key: str) -> tuple[int, int]:
        """(T, D) of a cached key, from the shard header."""
        return self._shapes[self._index[key][0]]

    def read(self, keys: Sequence[str]) -> np.ndarray:
        """(len(keys), T, D) float16 in the order given; every key must be cached with the same shape."""
        return np.stack([self._shard(self._index[key][0])[self._index[key][1]] for key in keys])

    def put(self, tokens: dict[str, np.ndarray]) -> None:
        """One shard per distinct token shape (2D models on volumes of different depths can differ)."""
        by_shape: dict[tuple[int, ...], list[str]] = {}
        for key, array in tokens.items():
            by_shape.setdefault(array.shape, []).append(key)
        for keys in by_shape.values():
            final, temporary = new_shard(self.directory, ".safetensors")
            stacked = np.stack([tokens[key].astype(np.float16) for key in keys])
            save_file({"tokens": stacked}, str(temporary), metadata={"keys": json.dumps(keys)})
            publish(temporary, final)
            self._seen.add(final)
            self._add(final, keys, stacked.shape[1:])

    def _add(self, shard: Path, keys: list[str], shape: tuple[int, ...]) -> None:
        self._shapes[shard] = (int(shape[0]), int(shape[1]))
        for row, key in enumerate(keys):
            self._index.setdefault(key, (shard, row))

    def _shard(self, shard: Path) -> np.ndarray:
        if shard in self._open:
            self._open.move_to_end(shard)
            return self._open[shard]
        with safe_open(shard, framework="numpy") as handle:
            array = handle.get_tensor("tokens")
        self._open[shard] = array
        if len(self._open) > _OPEN_SHARDS:
            self._open.popitem(last=False)
        return array


def write_tokens(path: Path, cache: TokenCache, keys: Sequence[str]) -> dict[str, object] | None:
    """Assemble the tokens of `keys`, in order, into `path` (written whole, then renamed); returns the table
    metadata entry, or None — with a warning, and no file — when the samples' token shapes differ."""
    if not keys:
        return None
    shapes = {cache.shape(key) for key in keys}
    if len(shapes) > 1:
        log.warning("patch tokens not written: samples have different token shapes %s (2D model on volumes of "
                    "different depth?); the attentive probe needs one shape", sorted(shapes))
        return None
    (count, width), = shapes
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp-{path.name}")
    array = np.lib.format.open_memmap(temporary, mode="w+", dtype=np.float16, shape=(len(keys), count, width))
    for start in range(0, len(keys), _COPY_ROWS):
        array[start : start + _COPY_ROWS] = cache.read(keys[start : start + _COPY_ROWS])
    array.flush()
    del array
    publish(temporary, path)
    return {"file": path.name, "shape": [len(keys), count, width], "dtype": "float16"}


def read_tokens(table_path: Path, metadata: dict[str, object]) -> np.ndarray | None:
    """The memory-mapped (n, T, D) tokens of a table whose metadata names them, else None."""
    entry = metadata.get(TOKENS_METADATA_KEY)
    if not isinstance(entry, dict):
        return None
    path = table_path.with_name(str(entry["file"]))
    if not path.is_file():
        raise MedprobeError(f"{table_path}: its patch tokens file {path.name} is missing; re-run the embedding")
    tokens = np.load(path, mmap_mode="r")
    if list(tokens.shape) != list(entry["shape"]):
        raise MedprobeError(f"{path}: shape {tokens.shape} does not match the table's {entry['shape']}; "
                            "re-run the embedding")
    return tokens
