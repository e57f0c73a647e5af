"""What the vector cache and the token cache share: an index of their shard files, indexing new shards from their
headers, loading a shard's values (verified against its checksum, damaged ones set aside), and a small LRU of
loaded shards. Each cache supplies only its file format (`_read_header`, `_read_values`) and how it writes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medprobe.embed.integrity import ShardUnusable, note_unverified, set_aside, verify


class ShardIndex:
    """Which shard and row holds each key, rebuilt when a shard is dropped (another shard may hold the same key).

    The first shard indexed for a key wins.
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


@dataclass(frozen=True)
class ShardHeader:
    keys: list[str]
    checksum: str | None  # None: written before checksums existed
    shape: tuple[int, ...] = ()  # of one row, where the format keeps it in the header


class ShardStore:
    """Shard files `shard-*<suffix>` in one folder, several writers allowed. A key in the store is a promise that
    reading may break: loading a damaged shard moves it aside, drops its keys and raises `ShardUnusable`, and the
    engine recomputes those samples. A shard whose header cannot even be read is set aside when indexed."""

    suffix = ""
    #: The reason a loaded shard is set aside when it disagrees with its indexed header.
    mismatch_reason = "keys differ from those indexed"
    #: Shards whose values stay loaded (reading a table's rows in order touches each shard about once).
    open_shards = 2

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
        present = set(self.directory.glob(f"shard-*{self.suffix}"))
        for shard in self._index.vanished(present):
            self._forget(shard)
        for shard in sorted(present - self._seen):
            self._seen.add(shard)
            try:
                header = self._read_header(shard)
            except FileNotFoundError:
                continue
            except ShardUnusable as exc:
                set_aside(shard, exc.reason)
                continue
            except Exception as exc:  # noqa: BLE001 - a damaged shard is recomputed, whatever the error type
                set_aside(shard, f"unreadable: {type(exc).__name__}")
                continue
            self._register(shard, header)

    def __contains__(self, key: str) -> bool:
        return key in self._index.rows

    def __len__(self) -> int:
        return len(self._index.rows)

    def verify(self, keys: Iterable[str]) -> list[Path]:
        """Load every shard holding one of `keys`, moving the damaged ones aside; returns those."""
        damaged = []
        for shard in dict.fromkeys(self._index.rows[key][0] for key in keys if key in self._index.rows):
            try:
                self._values(shard)
            except ShardUnusable:
                damaged.append(shard)
        return damaged

    def _rows(self, keys: Sequence[str]) -> np.ndarray:
        """The rows of `keys`, stacked in the order given; every key must be indexed."""
        rows = self._index.rows
        return np.stack([self._values(rows[key][0])[rows[key][1]] for key in keys])

    def _register(self, shard: Path, header: ShardHeader) -> None:
        self._seen.add(shard)
        self._checksums[shard] = header.checksum
        self._index.add(shard, header.keys)

    def _forget(self, shard: Path) -> None:
        self._index.drop(shard)
        self._open.pop(shard, None)
        self._checksums.pop(shard, None)

    def _values(self, shard: Path) -> np.ndarray:
        if shard in self._open:
            self._open.move_to_end(shard)
            return self._open[shard]
        try:
            keys, array = self._read_values(shard)
            if keys != self._index.shards[shard] or not self._matches_index(shard, array):
                raise ShardUnusable(shard, self.mismatch_reason)
            verify(shard, keys, array, self._checksums.get(shard))
        except FileNotFoundError:
            self._forget(shard)
            raise ShardUnusable(shard, "gone") from None
        except Exception as exc:  # noqa: BLE001 - the file libraries raise several types for a damaged file
            reason = exc.reason if isinstance(exc, ShardUnusable) else f"unreadable: {type(exc).__name__}"
            self._forget(shard)
            set_aside(shard, reason)
            raise ShardUnusable(shard, reason) from None
        self._open[shard] = array
        if len(self._open) > self.open_shards:
            self._open.popitem(last=False)
        return array

    def _matches_index(self, shard: Path, array: np.ndarray) -> bool:
        """Whether the loaded values agree with what the header promised (beyond the keys)."""
        return True

    def _read_header(self, shard: Path) -> ShardHeader:
        raise NotImplementedError

    def _read_values(self, shard: Path) -> tuple[list[str], np.ndarray]:
        raise NotImplementedError
