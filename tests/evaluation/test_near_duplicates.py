"""Near-duplicates across subjects are counted as a direct double loop counts them; the same subject's repeat
scans and a model whose vectors all point one way are not."""

import numpy as np

from medprobe.evaluation.near_duplicates import COSINE_LIMIT, near_duplicates_note


def _direct_count(X: np.ndarray, subjects: np.ndarray, queries: list[int], reference: list[int]) -> int:
    centred = X - X.mean(axis=0)
    found = 0
    for q in queries:
        for r in reference:
            a, b = centred[q], centred[r]
            if subjects[q] != subjects[r] and a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) >= COSINE_LIMIT:
                found += 1
                break
    return found


def test_test_rows_copied_from_training_rows_of_other_subjects_are_counted() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 16)) + 50.0  # all vectors point one way: raw cosines are all close to 1
    subjects = np.array([f"s{i}" for i in range(40)])
    split = np.array(["train"] * 30 + ["test"] * 10, dtype=object)
    X[30] = X[3]  # a copy under another subject
    X[31] = X[4] + 1e-7
    X[32] = X[5]
    subjects[32] = subjects[5]  # the same subject's repeat: not leakage between subjects
    expected = _direct_count(X, subjects, list(range(30, 40)), list(range(30)))
    assert expected == 2
    note = near_duplicates_note(X, subjects, split)
    assert note is not None and note.startswith("2 of 10 test rows have a near-duplicate of another subject")
    assert near_duplicates_note(np.delete(X, [30, 31], axis=0), np.delete(subjects, [30, 31]),
                                np.delete(split, [30, 31])) is None


def test_without_a_split_every_row_is_compared_with_every_other() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(12, 8))
    X[7] = X[2]
    subjects = np.array([f"s{i}" for i in range(12)])
    note = near_duplicates_note(X, subjects, None)
    assert note is not None and note.startswith("2 of 12 rows have a near-duplicate")  # each copy finds the other
    X[5] = np.nan  # an embedding that could not be computed is left out, not a crash
    assert (near_duplicates_note(X, subjects, None) or "").startswith("2 of 11 rows")
