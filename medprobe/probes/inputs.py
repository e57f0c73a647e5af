"""Validation and cleaning of a protocol's input: embeddings, labels, subjects and the optional split."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from medprobe.errors import ProbeError
from medprobe.split_column import fit_rows, known_rows, read_split, test_rows

TASK_TYPES = ("classification", "regression")


@dataclass(frozen=True)
class ClassText:
    """What a vision-language model's text tower says about each class, for zero-shot classification: the class
    label values (as the task's labels hold them) and their text embeddings (k, d), each the mean of the class's
    unit-norm prompt embeddings over the templates, renormalised (CLIP's prompt ensemble) or not (FLAIR's, as its
    authors do); the model's published logit scale (already exponentiated) and bias; and the prompts themselves,
    for the record."""

    classes: np.ndarray  # (k,) label values
    embeddings: np.ndarray  # (k, d) float32
    logit_scale: float
    logit_bias: float
    prompts: dict[str, list[str]]


@dataclass(frozen=True)
class ProbeInputs:
    """The rows a protocol works on: finite embeddings with a label and a subject, in the caller's order."""

    X: np.ndarray  # (n, d) float32
    y: np.ndarray  # (n,) class labels, or float64 targets for regression
    subjects: np.ndarray  # (n,) str
    rows: np.ndarray  # (n,) int64: index of each row in the caller's X
    split: np.ndarray | None  # (n,) "train" / "val" / "test", or None for cross-validation
    task_type: str
    tokens: np.ndarray | None = None  # (n, T, D) patch tokens for the attentive probe, when an encoder gives them
    class_text: ClassText | None = None  # the zero-shot protocol's class embeddings, when the model has a text tower

    def fit_positions(self) -> np.ndarray:
        """Positions a final model is fitted on (`medprobe.split_column.fit_rows`): train + val, or all rows."""
        return np.flatnonzero(fit_rows(self.split, len(self.y)))

    def test_positions(self) -> np.ndarray:
        """Positions of the test split; none without a split."""
        return np.flatnonzero(test_rows(self.split, len(self.y)))


def prepare_inputs(
    X: np.ndarray,
    y: np.ndarray,
    subject_ids: np.ndarray,
    split: np.ndarray | None,
    task_type: str,
) -> tuple[ProbeInputs, list[str]]:
    """Check shapes and drop the rows no protocol can use, with one note per reason.

    Rows with a non-finite embedding or a missing label are dropped (an embedding job may write NaN for an
    input it could not read); rows whose split is not train/val/test are ignored. A missing subject id is an
    error rather than a drop: without it the patient-level split cannot be guaranteed.
    """
    if task_type not in TASK_TYPES:
        raise ProbeError(f"task_type must be one of {', '.join(TASK_TYPES)}, got {task_type!r}")
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] == 0:
        raise ProbeError(f"embeddings must be a 2-D array (samples, features), got shape {X.shape}")
    n = X.shape[0]
    y = np.asarray(y)
    subjects = np.asarray(subject_ids)
    if X.dtype.kind not in "fiu":
        raise ProbeError(f"embeddings must be numeric, got dtype {X.dtype}")
    named = {"y": y, "subject_ids": subjects, "split": np.asarray(split if split is not None else [None] * n)}
    for name, values in named.items():
        if values.shape != (n,):
            raise ProbeError(f"{name} must have one entry per embedding row ({n}), got shape {values.shape}")
    if pd.isna(subjects).any():
        raise ProbeError(f"{int(pd.isna(subjects).sum())} rows have no subject_id; every row needs one")

    notes: list[str] = []
    keep = np.ones(n, dtype=bool)
    split = None if split is None else read_split(np.asarray(split, dtype=object))
    if split is not None:
        known = known_rows(split)
        if not known.all():
            notes.append(f"{int((~known).sum())} rows with a split other than train/val/test were ignored")
        keep &= known

    finite = np.isfinite(X).all(axis=1)
    if not finite[keep].all():
        notes.append(f"dropped {int((~finite & keep).sum())} rows whose embedding holds NaN or infinity")
    keep &= finite

    y, labelled = _clean_labels(y, task_type)
    if not labelled[keep].all():
        notes.append(f"dropped {int((~labelled & keep).sum())} rows without a label")
    keep &= labelled

    if not keep.any():
        raise ProbeError("no usable rows remain (all rows lack a finite embedding, a label or a known split)")
    rows = np.flatnonzero(keep)
    inputs = ProbeInputs(
        X=np.ascontiguousarray(X[rows], dtype=np.float32),
        y=y[rows],
        subjects=subjects[rows].astype(str),
        rows=rows.astype(np.int64),
        split=None if split is None else split[rows],
        task_type=task_type,
    )
    return inputs, notes


def with_tokens(inputs: ProbeInputs, tokens: np.ndarray, n: int) -> ProbeInputs:
    """`inputs` with the patch tokens of its rows; `tokens` (n, T, D) has one entry per row given to
    `prepare_inputs`."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 3 or len(tokens) != n:
        raise ProbeError(f"tokens must have shape ({n}, T, D), got {tokens.shape}")
    return replace(inputs, tokens=tokens[inputs.rows])


def _clean_labels(y: np.ndarray, task_type: str) -> tuple[np.ndarray, np.ndarray]:
    """Return the labels in a comparable dtype and a mask of rows that have one."""
    if task_type == "regression":
        try:
            targets = y.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise ProbeError(f"regression targets must be numbers ({err})") from None
        return targets, np.isfinite(targets)
    labelled = ~np.asarray(pd.isna(y), dtype=bool)
    if y.dtype == object:
        kinds = {type(value) for value in y[labelled]}
        if len(kinds) > 1:  # e.g. 1 and "1" read from a mixed column: compare them as text
            y = np.array([str(value) if ok else value for value, ok in zip(y, labelled, strict=True)], dtype=object)
    return y, labelled
