"""Plain-text tables and notes for terminal output, kept to `WIDTH` columns: a wide table is printed in blocks of
columns (its index repeated), a long note wraps, and the same note about many things is printed once with its
count and the list of what it concerns."""

from __future__ import annotations

import textwrap
from collections.abc import Iterable

import pandas as pd

WIDTH = 120
#: A longer cell is shortened in the middle ("…"); the commands' --json (or their files) keep the full text.
MAX_CELL = 56


def aligned(header: list[str], rows: list[list[str]], right_numbers: bool = True, keys: int = 1) -> str:
    """A plain text table: numbers right-aligned (unless `right_numbers` is False), text left-aligned, two spaces
    between columns. Wider than `WIDTH`, it is printed in blocks of columns, each repeating the first `keys`; a cell
    longer than `MAX_CELL` is shortened in the middle."""
    table = [[abbreviated(cell) for cell in row] for row in (header, *rows)]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]

    def numeric(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True

    def render(columns: list[int]) -> str:
        lines = []
        for row in table:
            cells = [row[i].rjust(widths[i]) if right_numbers and numeric(row[i]) else row[i].ljust(widths[i])
                     for i in columns]
            lines.append("  ".join(cells).rstrip())
        return "\n".join(lines)

    return "\n\n".join(render(block) for block in column_blocks(widths, keys))


def abbreviated(text: str, limit: int = MAX_CELL) -> str:
    """`text`, or its start and end around '…' when it is longer than `limit`."""
    if len(text) <= limit:
        return text
    head = (limit - 1) // 2
    return f"{text[:head]}…{text[len(text) - (limit - 1 - head):]}"


def column_blocks(widths: list[int], keys: int) -> list[list[int]]:
    """Column indices per block: the first `keys` in every block, then as many of the rest as fit `WIDTH`."""
    key_columns = list(range(min(keys, len(widths))))
    used = sum(widths[i] + 2 for i in key_columns)
    blocks: list[list[int]] = []
    current: list[int] = []
    width = used
    for i in range(len(key_columns), len(widths)):
        if current and width + widths[i] > WIDTH:
            blocks.append(key_columns + current)
            current, width = [], used
        current.append(i)
        width += widths[i] + 2
    blocks.append(key_columns + current)
    return blocks


def format_frame(table: pd.DataFrame) -> str:
    if table.empty:
        return "(no results)"
    return table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="–", line_width=WIDTH)


def title(text: str, mark: str = "==") -> str:
    """A section title after a blank line, `== text ==`, wrapped to `WIDTH`."""
    return "\n" + "\n".join(textwrap.wrap(f"{mark} {text} {mark}", WIDTH, subsequent_indent=" " * (len(mark) + 1)))


def grouped_notes(items: Iterable[tuple[str, str]], indent: str = "  ") -> list[str]:
    """(where, note) pairs as lines: each distinct note once, followed by how many places gave it and which,
    wrapped to `WIDTH`."""
    places: dict[str, list[str]] = {}
    for where, note in items:
        seen = places.setdefault(note, [])
        if where not in seen:
            seen.append(where)
    lines = []
    for note, wheres in places.items():
        head = f"{wheres[0]}: {note}" if len(wheres) == 1 else f"{note} ({len(wheres)}×: {', '.join(wheres)})"
        lines += textwrap.wrap(head, WIDTH, initial_indent=indent, subsequent_indent=indent + "    ",
                               break_on_hyphens=False)
    return lines


def number(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.6g}"
