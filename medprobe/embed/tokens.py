"""Patch tokens beside the embedding table: the input of the attentive probe.

Tokens are large — T × D per sample, 256 × 384 for DINOv2 ViT-S/14 at 224 px, 256 × 1024 for ViT-L — so they are
kept as float16, cached in safetensors shards keyed exactly like the pooled vectors (written to a temporary name,
fsynced and renamed, like the vector shards, and carrying a checksum verified whenever a shard is loaded: see
`medprobe.embed.integrity`), and assembled into one `.npy` array beside the table whose rows follow the table's rows.
That array is written with plain buffered writes, never through a memory map (a full disk under a writable map is a
SIGBUS, not an error); readers memory-map it, so a probe touches only the rows it trains on.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save

from medprobe.embed.cache import ShardIndex
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
from medprobe.errors import MedprobeError

log = logging.getLogger("medprobe.embed")

TOKENS_SUFFIX = ".tokens.npy"
#: Table metadata key that names the tokens file and its shape; a table without it has no tokens.
TOKENS_METADATA_KEY = "tokens"
_OPEN_SHARDS = 2
_COPY_ROWS = 512
_DTYPE = np.dtype("<f2")


def tokens_path(table_path: Path) -> Path:
    """`embeddings/dinov2_vits14.parquet` → `embeddings/dinov2_vits14.tokens.npy`."""
    return table_path.with_name(table_path.stem + TOKENS_SUFFIX)


class TokenCache:
    """Maps cache keys to (T, D) float16 token arrays; `put` appends one shard atomically.

    Shard files carry their keys and checksum in the safetensors header, so indexing a cache reads headers only;
    `read` verifies a shard when it loads it and raises `ShardUnusable` (after moving the shard aside and dropping
    its keys) when it is damaged, as `ShardCache.read_vectors` does.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._index = ShardIndex()
        self._shapes: dict[Path, tuple[int, int]] = {}
        self._checksums: dict[Path, str | None] = {}
        self._seen: set[Path] = set()
        self._open: OrderedDict[Path, np.ndarray] = OrderedDict()
        self.refresh()
        note_unverified(directory, sum(1 for c in self._checksums.values() if c is None))

    def refresh(self) -> None:
        """Index shards written since the last look (by other processes sharing the directory), and forget those
        that went away."""
        present = set(self.directory.glob("shard-*.safetensors"))
        for shard in self._index.vanished(present):
            self._forget(shard)
        for shard in sorted(present - self._seen):
            self._seen.add(shard)
            try:
                with safe_open(shard, framework="numpy") as handle:
                    metadata = handle.metadata() or {}
                    keys = json.loads(metadata["keys"])
                    shape = tuple(handle.get_slice("tokens").get_shape()[1:])
                if set(metadata) - {"keys", CHECKSUM_KEY} or len(shape) != 2:
                    raise ValueError("unexpected header")
            except FileNotFoundError:
                continue
            except Exception as exc:  # noqa: BLE001 - a damaged shard is recomputed, whatever the error type
                set_aside(shard, f"unreadable: {type(exc).__name__}")
                continue
            self._checksums[shard] = metadata.get(CHECKSUM_KEY)  # None: written before checksums
            self._add(shard, keys, shape)

    def __contains__(self, key: str) -> bool:
        return key in self._index.rows

    def __len__(self) -> int:
        return len(self._index.rows)

    def shape(self, key: str) -> tuple[int, int]:
        """(T, D) of a cached key, from the shard header."""
        return self._shapes[self._index.rows[key][0]]

    def read(self, keys: Sequence[str]) -> np.ndarray:
        """(len(keys), T, D) float16 in the order given; every key must be cached with the same shape."""
        rows = self._index.rows
        return np.stack([self._shard(rows[key][0])[rows[key][1]] for key in keys])

    def verify(self, keys: Sequence[str]) -> list[Path]:
        """Load every shard holding one of `keys`, moving the damaged ones aside; returns those."""
        return damaged_shards(dict.fromkeys(self._index.rows[key][0] for key in keys if key in self._index.rows),
                              self._shard)

    def put(self, tokens: dict[str, np.ndarray]) -> None:
        """One shard per distinct token shape (2D models on volumes of different depths can differ)."""
        by_shape: dict[tuple[int, ...], list[str]] = {}
        for key, array in tokens.items():
            by_shape.setdefault(array.shape, []).append(key)
        for keys in by_shape.values():
            stacked = np.stack([tokens[key].astype(_DTYPE) for key in keys])
            checksum = content_checksum(keys, stacked)
            data = save({"tokens": stacked}, metadata={"keys": json.dumps(keys), CHECKSUM_KEY: checksum})
            final = shard_name(self.directory, ".safetensors")
            with atomic_write(final, len(data), "a patch-token cache shard") as pending:
                pending.path.write_bytes(data)
            self._seen.add(final)
            self._checksums[final] = checksum
            self._add(final, keys, stacked.shape[1:])

    def _add(self, shard: Path, keys: list[str], shape: tuple[int, ...]) -> None:
        self._shapes[shard] = (int(shape[0]), int(shape[1]))
        self._index.add(shard, keys)

    def _forget(self, shard: Path) -> None:
        self._index.drop(shard)
        self._open.pop(shard, None)
        self._checksums.pop(shard, None)
        self._shapes.pop(shard, None)

    def _shard(self, shard: Path) -> np.ndarray:
        if shard in self._open:
            self._open.move_to_end(shard)
            return self._open[shard]
        try:
            with safe_open(shard, framework="numpy") as handle:
                keys = json.loads((handle.metadata() or {})["keys"])
                array = handle.get_tensor("tokens")
            if keys != self._index.shards[shard] or array.shape[1:] != self._shapes[shard]:
                raise ShardUnusable(shard, "header differs from the one indexed")
            verify(shard, keys, array, self._checksums.get(shard))
        except FileNotFoundError:
            self._forget(shard)
            raise ShardUnusable(shard, "gone") from None
        except Exception as exc:  # noqa: BLE001 - safetensors raises several types for a damaged file
            reason = exc.reason if isinstance(exc, ShardUnusable) else f"unreadable: {type(exc).__name__}"
            self._forget(shard)
            set_aside(shard, reason)
            raise ShardUnusable(shard, reason) from None
        self._open[shard] = array
        if len(self._open) > _OPEN_SHARDS:
            self._open.popitem(last=False)
        return array


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
    with atomic_write(path, needed, "the patch tokens file") as pending, pending.path.open("wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        for start in range(0, len(keys), _COPY_ROWS):
            rows = np.ascontiguousarray(cache.read(keys[start : start + _COPY_ROWS]), dtype=_DTYPE)
            handle.write(rows.reshape(-1).view(np.uint8).data)
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
