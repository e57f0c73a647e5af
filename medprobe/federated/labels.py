"""The global label map: every site's class values, as text, merged into one sorted list.

Sites send the set of label values they hold (not counts per row, not rows); the server merges them so every site
encodes classes in the same column order.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from medprobe.evaluation.labels import class_label


def label_text(values: Iterable[object]) -> list[str]:
    """Labels as text by the rule every front end uses (`class_label`), so an int and a float site agree."""
    return [class_label(value) for value in values]


def merge_classes(per_site: Iterable[Iterable[str]]) -> list[str]:
    """Sorted union; numerically when every label is a number."""
    union = set().union(*[set(labels) for labels in per_site])

    def numeric(text: str) -> bool:
        try:
            float(text)
        except ValueError:
            return False
        return True

    if all(numeric(c) for c in union):
        return sorted(union, key=float)
    return sorted(union)


def encode(y: np.ndarray, classes: list[str]) -> np.ndarray:
    """Column index of each label; a label outside `classes` is an error at the caller's site."""
    index = {label: code for code, label in enumerate(classes)}
    texts = label_text(np.asarray(y).tolist())
    missing = sorted(set(texts) - set(index))
    if missing:
        raise ValueError(f"labels {missing[:5]} are not in the global label map {classes}")
    return np.array([index[t] for t in texts], dtype=np.int64)
