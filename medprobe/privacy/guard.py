"""The last line of defence before anything leaves the site: no word of a local file or folder name may reach
MLflow, the results bundle or a shared report.

What medprobe writes is built from a closed vocabulary (spec names, label values, templates with typed fields), so
the guard should never find anything. It is there for the message nobody thought about. It splits every folder
and file name of the job's paths into word-parts (`medprobe.privacy.words`) and looks for those parts in the
text about to be logged, split the same way. Word-parts that medprobe may write by itself (the public vocabulary,
`medprobe.privacy.vocabulary`) are not looked for, so a folder called `demo` or `lesion` is not a hit; typed
values (numbers, salted pseudonyms, hex digests) are not words and are not looked at.

A hit never ends a job: the one value (a tag, a parameter, a line of a text file, a cell of a table) is replaced
by `WITHHELD`, the hit is counted (`withheld`) and the job goes on. The recorder gives the run a note and a metric.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from medprobe.privacy.vocabulary import public_vocabulary
from medprobe.privacy.words import text_parts, word_parts

#: What replaces a value that holds a word of a local name.
WITHHELD = "<withheld: matched a local file or folder name>"
#: Typed values that are not words: salted pseudonyms and hex digests (with a letter and a digit, 8 or more
#: characters: ids, fingerprints, dataset digests). Removed before the text is split into word-parts.
_TYPED = re.compile(r"\b(?:sub|smp)-[0-9a-f]{16}\b|\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{8,}\b")
_TEXT_SUFFIXES = frozenset({".txt", ".html", ".yaml", ".yml", ".md"})
_TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}


def identifying(part: str) -> bool:
    """Word-parts that can name someone: two or more letters, or four or more digits (dates, record numbers)."""
    return len(part) >= 4 if part.isdigit() else len(part) >= 2


class PathGuard:
    """Replaces text that holds any of `parts` (normalised word-parts, see `medprobe.privacy.words`)."""

    def __init__(self, parts: Iterable[str]) -> None:
        self.parts = frozenset(parts)
        self.withheld = 0

    @classmethod
    def for_paths(cls, paths: Iterable[str | os.PathLike[str]], public: Iterable[str] = (),
                  folders: Iterable[str | os.PathLike[str]] = ()) -> PathGuard:
        """The identifying word-parts of every component of the files `paths` (their own names included) and of the
        `folders`, as written, made absolute and with links resolved, less the public vocabulary (`public`: names
        the spec declares, label values, card texts; and medprobe's own template words)."""
        vocabulary = public_vocabulary(public)
        components: set[str] = set()
        for path in [*paths, *folders]:
            for form in {str(path), os.path.abspath(path), os.path.realpath(path)}:
                components.update(Path(form).parts)
        parts = {part for component in components for part in word_parts(component)}
        return cls(part for part in parts if identifying(part) and part not in vocabulary)

    def leaks(self, text: str) -> bool:
        """Whether `text` holds a word-part of a local name."""
        return bool(self.parts) and not self.parts.isdisjoint(text_parts(_TYPED.sub(" ", text)))

    def text(self, text: str) -> str:
        """`text`, or `WITHHELD` (counted) when it leaks."""
        if self.leaks(text):
            self.withheld += 1
            return WITHHELD
        return text

    def lines(self, text: str) -> str:
        """A text artifact with each leaking line withheld, the others kept."""
        return "".join(self.text(line.rstrip("\n")) + ("\n" if line.endswith("\n") else "")
                       for line in text.splitlines(keepends=True))

    def value(self, value: Any) -> Any:
        """Every string in `value` (a mapping's keys and values, list items, recursively) checked; numbers and
        booleans pass as they are; a mapping entry whose key leaks is dropped (counted)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            kept = {}
            for key, item in value.items():
                if isinstance(key, str) and self.leaks(key):
                    self.withheld += 1
                    continue
                kept[key] = self.value(item)
            return kept
        if isinstance(value, list | tuple | set):
            return [self.value(item) for item in value]
        if value is None or isinstance(value, int | float | bool):
            return value
        return self.text(str(value))

    def file(self, path: Path) -> bytes | None:
        """The content of a text artifact with what leaks withheld, or None when nothing leaks (log the file as it
        is). JSON values, table cells and text lines are checked; binary files (figures, tensors) hold no text."""
        suffix = path.suffix.lower()
        before = self.withheld
        if suffix == ".json":
            text = json.dumps(self.value(json.loads(path.read_text(encoding="utf-8"))), indent=2, sort_keys=True)
        elif suffix in _TABLE_SUFFIXES:
            text = self._table(path, _TABLE_SUFFIXES[suffix])
        elif suffix in _TEXT_SUFFIXES:
            text = self.lines(path.read_text(encoding="utf-8", errors="replace"))
        else:
            return None
        return text.encode("utf-8") if self.withheld > before else None

    def _table(self, path: Path, delimiter: str) -> str:
        with path.open(newline="", encoding="utf-8", errors="replace") as handle:
            rows = list(csv.reader(handle, delimiter=delimiter))
        out = io.StringIO()
        csv.writer(out, delimiter=delimiter, lineterminator="\n").writerows(
            [[cell if _is_number(cell) else self.text(cell) for cell in row] for row in rows])
        return out.getvalue()


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
