"""Labels that are the same number are one class in every front end; other labels are kept as written."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medprobe.evaluation.labels import class_label, merged_spellings
from medprobe.evaluation.rows import TaskRows
from medprobe.federated.labels import encode, label_text


@pytest.mark.parametrize(("value", "expected"), [
    ("1", "1"), ("1.0", "1"), ("01", "1"), (" 1 ", "1"), ("1e0", "1"), (1.0, "1"), (np.int64(1), "1"),
    ("-0", "0"), ("0.50", "0.5"), (0.5, "0.5"), ("A", "A"), ("a", "a"), (" A ", " A "), ("1_000", "1_000"),
    ("inf", "inf"), ("nan", "nan"), ("12345678901234567891", "12345678901234567891"),
])
def test_class_label(value: object, expected: str) -> None:
    assert class_label(value) == expected


def _table(labels: list[object]) -> pd.DataFrame:
    return pd.DataFrame({"subject_id": [f"s{i}" for i in range(len(labels))], "y": labels})


def test_the_same_number_written_differently_is_one_class_beside_text_labels() -> None:
    rows = TaskRows.of(_table(["1", "1.0", "01", " 1 ", "0", "A", "a"]), "y")
    assert rows.labels.tolist() == ["1", "1", "1", "1", "0", "A", "a"]


def test_numbers_as_text_become_integer_classes() -> None:
    rows = TaskRows.of(_table(["1", "1.0", "01", "0", "0.0"]), "y")
    assert rows.labels.dtype == np.int64 and rows.labels.tolist() == [1, 1, 1, 0, 0]


def test_long_numeric_codes_stay_distinct() -> None:
    rows = TaskRows.of(_table(["12345678901234567890", "12345678901234567891"]), "y")
    assert len(set(rows.labels.tolist())) == 2


def test_federated_sites_agree_with_task_rows() -> None:
    assert label_text([1, 1.0, "01", " 1 "]) == ["1", "1", "1", "1"]
    assert encode(np.array(["1.0", "0"], dtype=object), ["0", "1"]).tolist() == [1, 0]


def test_merged_spellings_names_each_way_a_number_was_written() -> None:
    assert merged_spellings(["1", "1.0", "01", "0", "A", "a"]) == {"1": ["01", "1", "1.0"]}
