"""Plain-text tables for terminal output."""

from __future__ import annotations

import pandas as pd


def aligned(header: list[str], rows: list[list[str]], right_numbers: bool = True) -> str:
    """A plain text table: numbers right-aligned (unless `right_numbers` is False), text left-aligned, two spaces
    between columns."""
    table = [header, *rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]

    def numeric(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True

    lines = []
    for row in table:
        cells = [c.rjust(w) if right_numbers and numeric(c) else c.ljust(w) for c, w in zip(row, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def format_frame(table: pd.DataFrame) -> str:
    if table.empty:
        return "(no results)"
    return table.to_string(float_format=lambda v: f"{v:.3f}", na_rep="–")



def number(value: float | int | None) -> str:
    return "-" if value is None else f"{value:.6g}"
