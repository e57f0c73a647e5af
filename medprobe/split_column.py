"""The one rule for a `split` column: how its values read, which rows models are fitted on, which are held out.

Values are read case-insensitively, without surrounding blanks, as train, val or test. A column that is absent, or
blank on every row, means no split: protocols cross-validate by subject, a published head is fitted on every
labelled row and another site's head is scored on every labelled row. With a split, models are fitted on train +
val (val picks hyper-parameters inside a protocol) and tested on test; a row with any other value is used by no
protocol. Every reader of a split (task rows, probe inputs, heads, transfer, robustness, federated rows, the LDAE
hold-out, the dry-run plan, the manifest check) goes through this module.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

SPLIT_NAMES = ("train", "val", "test")
FIT_SPLITS = ("train", "val")
TEST_SPLIT = "test"


def read_split(values: pd.Series | Iterable[object] | None) -> np.ndarray | None:
    """The values in lower case without blanks (missing ones as ""), or None when there are none or all are blank."""
    if values is None:
        return None
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    text = series.astype(object).where(series.notna(), "").astype(str).str.strip().str.lower()
    if (text == "").all():
        return None
    return text.to_numpy(dtype=object)


def table_split(table: pd.DataFrame) -> np.ndarray | None:
    """`read_split` of the table's `split` column (None when it has none)."""
    return read_split(table["split"]) if "split" in table.columns else None


def known_rows(split: np.ndarray) -> np.ndarray:
    """Mask of rows whose split is train, val or test."""
    return np.isin(split, SPLIT_NAMES)


def fit_rows(split: np.ndarray | None, n: int) -> np.ndarray:
    """Mask of the `n` rows a final model is fitted on: train and val, or every row without a split."""
    return np.ones(n, dtype=bool) if split is None else np.isin(split, FIT_SPLITS)


def pretraining_rows(split: np.ndarray) -> np.ndarray:
    """Mask of rows a site may pretrain its own encoder on: all but val and test, which are held out so that no
    probe is ever tested on an image the encoder learnt from."""
    return ~np.isin(split, ("val", TEST_SPLIT))


def test_rows(split: np.ndarray | None, n: int) -> np.ndarray:
    """Mask of the `n` rows held out for testing: the test split, none without a split."""
    return np.zeros(n, dtype=bool) if split is None else np.asarray(split == TEST_SPLIT, dtype=bool)
