import numpy as np
import pytest

from medprobe.errors import ProbeError
from medprobe.probes import evaluate_protocol
from medprobe.probes.splits import check_no_leakage, split_fold, subject_kfold


def _subjects(n_subjects: int, rows_each: int) -> np.ndarray:
    return np.repeat([f"s{i:03d}" for i in range(n_subjects)], rows_each)


def test_leaky_split_is_refused_naming_the_count() -> None:
    subjects = np.array(["a", "a", "b", "b", "c", "c"])
    split = np.array(["train", "test", "train", "val", "test", "val"])  # a and c leak, b does not
    with pytest.raises(ProbeError, match="leaks 2 subject"):
        split_fold(split, subjects)


def test_leaky_split_is_refused_by_evaluate_protocol() -> None:
    rng = np.random.default_rng(0)
    subjects = _subjects(10, 2)
    split = np.tile(["train", "test"], 10)
    X = rng.normal(size=(20, 4)).astype(np.float32)
    y = np.repeat([0, 1], 10)
    with pytest.raises(ProbeError, match="leaks 10 subject"):
        evaluate_protocol("knn", {}, X, y, "classification", subjects, split)


def test_split_without_test_rows_is_refused() -> None:
    with pytest.raises(ProbeError, match="no test rows"):
        split_fold(np.array(["train", "val"]), np.array(["a", "b"]))


def test_check_no_leakage_accepts_disjoint_sides() -> None:
    subjects = np.array(["a", "b", "c"])
    check_no_leakage(subjects, np.array([0, 1]), np.array([2]), "here")


def test_stratified_subject_folds_never_share_a_subject() -> None:
    rng = np.random.default_rng(1)
    subjects = _subjects(40, 3)
    y = np.repeat(rng.integers(0, 3, size=40), 3)
    folds, notes = subject_kfold(y, subjects, "classification", 5, seed=0)
    assert len(folds) == 5 and notes == []
    for fold in folds:
        assert not set(subjects[fold.train]) & set(subjects[fold.test])
        assert set(y[fold.test]) == set(y)  # stratified: every class tested in every fold
    tested = np.sort(np.concatenate([fold.test for fold in folds]))
    np.testing.assert_array_equal(tested, np.arange(len(y)))  # every row tested exactly once


def test_regression_group_folds_never_share_a_subject_and_depend_on_seed() -> None:
    subjects = _subjects(12, 4)
    y = np.linspace(0, 1, len(subjects))
    folds, _ = subject_kfold(y, subjects, "regression", 4, seed=0)
    other, _ = subject_kfold(y, subjects, "regression", 4, seed=1)
    for fold in folds:
        assert not set(subjects[fold.train]) & set(subjects[fold.test])
    assert any(not np.array_equal(a.test, b.test) for a, b in zip(folds, other, strict=True))


def test_folds_reduced_to_rarest_class_subjects_with_a_note() -> None:
    subjects = _subjects(13, 2)
    y = np.repeat([0] * 10 + [1] * 3, 2)
    folds, notes = subject_kfold(y, subjects, "classification", 5, seed=0)
    assert len(folds) == 3
    assert any("folds reduced from 5 to 3" in note for note in notes)


def test_class_with_a_single_subject_is_left_out_of_cross_validation() -> None:
    subjects = _subjects(9, 2)
    y = np.repeat([0] * 4 + [1] * 4 + [2], 2)
    folds, notes = subject_kfold(y, subjects, "classification", 5, seed=0)
    used = np.concatenate([np.concatenate([fold.train, fold.test]) for fold in folds])
    assert not np.isin(used, np.flatnonzero(y == 2)).any()
    assert any("fewer than 2 subjects" in note and "2 rows" in note for note in notes)


def test_other_split_values_are_ignored_with_a_note() -> None:
    rng = np.random.default_rng(2)
    n = 40
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = np.tile([0, 1], n // 2)
    subjects = np.array([f"s{i}" for i in range(n)])
    split = np.array(["train"] * 25 + ["test"] * 10 + ["holdout"] * 5)
    result = evaluate_protocol("knn", {"k": [5], "primary_k": 5}, X, y, "classification", subjects, split)
    assert result.n_train == 25 and result.n_test == 10
    assert set(result.predictions["row"]) == set(range(25, 35))
    assert any("5 rows with a split other than" in note for note in result.notes)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_folds_do_not_depend_on_the_pseudonyms(task: str) -> None:
    """Sites hash subject ids with a random salt; renaming every subject (another salt) keeps the folds."""
    subjects = _subjects(15, 2)
    y = np.repeat(np.arange(15) % 3, 2) if task == "classification" else np.linspace(0, 1, 30)
    renamed = np.array([f"sub-{hash((s, 'other salt')) & 0xFFFFFFFF:08x}" for s in subjects])
    folds, _ = subject_kfold(y, subjects, task, 3, seed=0)
    again, _ = subject_kfold(y, renamed, task, 3, seed=0)
    for a, b in zip(folds, again, strict=True):
        np.testing.assert_array_equal(a.test, b.test)
