"""Checksums of cache shards, and what becomes of a shard that fails its own.

A shard's checksum is the sha256 of its keys, the dtype and shape of its array and the array's bytes, stored
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
