"""Patient-level evaluation splits: the caller's train/val/test split, or stratified group k-fold by subject.

Every fold is checked for leakage: a subject on both the fitting side and the test side would let a probe
recognise the patient instead of the finding, so such a split is refused rather than silently repaired.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from medprobe.errors import ProbeError
from medprobe.probes.inputs import ProbeInputs


@dataclass(frozen=True)
class Fold:
    """Row indices (into `ProbeInputs`) for one fit/evaluate round; `val` rows are fitted on too."""

    train: np.ndarray
    test: np.ndarray
    val: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))

    @property
    def fit_rows(self) -> np.ndarray:
        return np.concatenate([self.train, self.val])


def make_folds(inputs: ProbeInputs, n_folds: int, seed: int) -> tuple[list[Fold], list[str]]:
    """The caller's split when given, else `n_folds` subject-grouped folds whose test rows cover the data."""
    if inputs.split is not None:
        return [split_fold(inputs.split, inputs.subjects)], []
    return subject_kfold(inputs.y, inputs.subjects, inputs.task_type, n_folds, seed)


def split_fold(split: np.ndarray, subjects: np.ndarray) -> Fold:
    """Fit on "train" (+ "val") rows and test on "test" rows; refuse a split that shares subjects."""
    fold = Fold(
        train=np.flatnonzero(split == "train"),
        test=np.flatnonzero(split == "test"),
        val=np.flatnonzero(split == "val"),
    )
    if len(fold.fit_rows) == 0:
        raise ProbeError("the split has no train rows; mark some rows 'train'")
    if len(fold.test) == 0:
        raise ProbeError("the split has no test rows; mark some rows 'test' or leave the split out to cross-validate")
    check_no_leakage(subjects, fold.fit_rows, fold.test, "the given split")
    return fold


def subject_kfold(
    y: np.ndarray, subjects: np.ndarray, task_type: str, n_folds: int, seed: int
) -> tuple[list[Fold], list[str]]:
    """Stratified group k-fold by subject (group k-fold for regression) with out-of-fold test rows.

    For classification a class seen in fewer than two subjects cannot be both fitted and tested, so its rows
    are left out with a note; the number of folds is then reduced, with a note, to the number of subjects of
    the rarest class so that every class can appear on both sides of every fold.
    """
    notes: list[str] = []
    keep = np.arange(len(y))
    if task_type == "classification":
        labels, subject_counts = _subjects_per_class(y, subjects)
        rare = labels[subject_counts < 2]
        if len(rare):
            dropped = np.isin(y, rare)
            names = ", ".join(repr(label) for label in rare.tolist())
            notes.append(
                f"classes {names} have fewer than 2 subjects; their {int(dropped.sum())} rows were left out "
                "of cross-validation"
            )
            keep = np.flatnonzero(~dropped)
            subject_counts = subject_counts[subject_counts >= 2]
        if len(subject_counts) < 2:
            raise ProbeError(
                "cross-validation needs at least two classes with two or more subjects each; "
                f"found {len(subject_counts)}"
            )
        limit, reason = int(subject_counts.min()), "subjects in the rarest class"
    else:
        limit, reason = len(np.unique(subjects)), "subjects"
    n_subjects = len(np.unique(subjects[keep]))
    if n_subjects < 2:
        raise ProbeError(f"cross-validation needs at least 2 subjects, found {n_subjects}")
    n_splits = min(n_folds, limit, n_subjects)
    if n_splits < n_folds:
        notes.append(f"folds reduced from {n_folds} to {n_splits} (only {limit} {reason})")

    folds = []
    for number, (train, test) in enumerate(
        group_kfold(y[keep], subjects[keep], n_splits, task_type == "classification", seed)
    ):
        fold = Fold(train=keep[train], test=keep[test])
        check_no_leakage(subjects, fold.fit_rows, fold.test, f"cross-validation fold {number}")
        folds.append(fold)
    return folds, notes


def group_kfold(
    y: np.ndarray, groups: np.ndarray, n_splits: int, stratified: bool, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train, test) index pairs with each group on one side only, shuffled reproducibly by `seed`.

    Groups are numbered in order of first appearance before splitting, so the folds depend on the rows' order and
    the seed, not on the subject pseudonyms: a site re-run with another salt (a fresh workdir) gets the same folds.
    """
    groups = pd.factorize(np.asarray(groups))[0]
    if stratified:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        # "The least populated class in y has only n members": expected with rare classes, handled by callers.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*least populated class", category=UserWarning)
            return list(splitter.split(np.zeros(len(y)), y, groups))
    # GroupKFold balances fold sizes deterministically; relabelling the groups in a seeded random order makes
    # the assignment of equally sized groups random too, without the `shuffle` newer scikit-learn added.
    unique, inverse = np.unique(groups, return_inverse=True)
    relabelled = np.random.default_rng(seed).permutation(len(unique))[inverse]
    return list(GroupKFold(n_splits=n_splits).split(np.zeros(len(y)), y, relabelled))


def check_no_leakage(subjects: np.ndarray, fit_rows: np.ndarray, test_rows: np.ndarray, where: str) -> None:
    """Raise ProbeError if any subject has rows on both the fitting and the test side."""
    shared = np.intersect1d(subjects[fit_rows], subjects[test_rows])
    if len(shared):
        examples = ", ".join(repr(s) for s in shared[:3].tolist())
        raise ProbeError(
            f"{where} leaks {len(shared)} subject(s) between train/val and test (e.g. {examples}); "
            "assign all rows of a subject to one side"
        )


def _subjects_per_class(y: np.ndarray, subjects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.unique(y)
    counts = np.array([len(np.unique(subjects[y == label])) for label in labels])
    return labels, counts
