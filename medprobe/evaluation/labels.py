"""The one rule for reading a class label, shared by `TaskRows` (run, evaluate, transfer, federated) and `validate`.

A label that reads as a number is that number: `1`, `1.0`, `01`, ` 1 ` and `1e0` are all the class `1`, and
`0.50` is `0.5`, whether the table holds them as numbers or as text (a column with one non-numeric value, or a
Parquet string column, keeps them as text). Any other label is kept exactly as written, so `A` and `a` stay two
classes. Decimal arithmetic, not float, so long numeric codes that differ in their last digit stay distinct.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

import numpy as np

#: Numbers beyond 10**±this many digits are kept as written: no real class code is one, and writing them out
#: in full would cost memory.
_MAX_EXPONENT = 40
_INT64 = np.iinfo(np.int64)
_WHOLE = re.compile(r"-?[0-9]+")


def class_label(value: object) -> str:
    """The canonical text of one present label: a number in its shortest plain form, anything else unchanged."""
    text = str(value)
    number = _canonical_number(text.strip())
    return text if number is None else number


def integer_labels(labels: list[str]) -> np.ndarray | None:
    """Canonical labels as int64 when every one is a whole number in int64's range (probes then see integer
    classes, as scikit-learn's own datasets have), else None."""
    if not all(_WHOLE.fullmatch(label) for label in labels):
        return None
    values = [int(label) for label in labels]
    if any(not _INT64.min <= v <= _INT64.max for v in values):
        return None
    return np.array(values, dtype=np.int64)


def merged_spellings(values: Iterable[object]) -> dict[str, list[str]]:
    """Canonical label -> its different spellings, for the labels written more than one way (`1`, `1.0`, `01`)."""
    spellings: dict[str, set[str]] = defaultdict(set)
    for value in values:
        spellings[class_label(value)].add(str(value))
    return {label: sorted(seen) for label, seen in spellings.items() if len(seen) > 1}


def _canonical_number(text: str) -> str | None:
    if "_" in text:  # Decimal reads 1_000 as 1000; no table writes numbers that way
        return None
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite() or abs(number.adjusted()) > _MAX_EXPONENT:
        return None
    if number == number.to_integral_value():
        return str(int(number))
    return format(number.normalize(), "f")
