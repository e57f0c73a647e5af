"""The one rule for which rows of an embedding table a task uses, how their labels are read, and how they split.

Every front end goes through `TaskRows.of`: a site job, `medprobe evaluate`, the transfer step and the federated
probes, so they cannot disagree. The rules:

- labels: classification labels are read by `medprobe.evaluation.labels.class_label` (`1`, `1.0` and `01` are one
  class) and become integers when all are whole numbers, text otherwise; regression targets are numbers, and a
  value that is not one is left out with a note; rows without a label are left out.
- split: read by `medprobe.split_column`, the one rule for it (absent or blank on every row: no split and
  subject-grouped cross-validation; otherwise train/val/test, any other value left out of the protocols).
- subjects: the table's `subject_id` column, which a medprobe table holds as salted pseudonyms already
  (`medprobe.embed.pseudonyms`); anyone's own table is pseudonymised the same way before any file is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from medprobe.errors import MedprobeError
from medprobe.evaluation.labels import class_label, integer_labels
from medprobe.probes.inputs import ProbeInputs, prepare_inputs, with_tokens
from medprobe.split_column import table_split

TASK_TYPES = ("classification", "regression")
#: The largest regression target (in absolute value) a task uses: squared errors of values up to 1e150 (≤ 4e300),
#: summed over any realistic number of rows, stay finite in float64; 1e308 squared is already infinite.
MAX_TARGET = 1e150


@dataclass(frozen=True)
class TaskRows:
    """The rows of an embedding table usable for one task, with what every probe needs of them."""

    target: str
    task_type: str
    labels: np.ndarray
    usable: np.ndarray  # boolean mask over the table's rows
    notes: list[str]  # what was left out, and why
    subjects: np.ndarray
    split: np.ndarray | None  # normalised split of the usable rows, None when the table has none
    sample_ids: np.ndarray

    @classmethod
    def of(cls, table: pd.DataFrame, target: str, task_type: str = "classification") -> TaskRows:
        if task_type not in TASK_TYPES:
            raise MedprobeError(f"task type must be one of {', '.join(TASK_TYPES)}, got {task_type!r}")
        missing = [column for column in ("subject_id", target) if column not in table.columns]
        if missing:
            raise MedprobeError(f"missing column(s) {missing}; found {list(table.columns)}")
        labels, usable, notes = _labels(table, target, task_type)
        split = table_split(table)
        sample_ids = table["sample_id"] if "sample_id" in table.columns else pd.Series(np.arange(len(table)))
        return cls(
            target=target,
            task_type=task_type,
            labels=labels,
            usable=usable,
            notes=notes,
            subjects=table["subject_id"].to_numpy()[usable],
            split=None if split is None else split[usable],
            sample_ids=sample_ids.astype(str).to_numpy()[usable],
        )

    def __len__(self) -> int:
        return len(self.labels)

    def prepare(self, X: np.ndarray, tokens: np.ndarray | None = None) -> tuple[ProbeInputs, list[str]]:
        """The probe inputs of these rows, with the notes of what `prepare_inputs` left out (non-finite embeddings,
        unknown split values). `X` and `tokens` have one entry per row of the table these rows were taken from.
        Built once per (table, task): every protocol, the analyses, the published head and the transfer scoring
        share them."""
        inputs, notes = prepare_inputs(np.asarray(X)[self.usable], self.labels, self.subjects, self.split,
                                       self.task_type)
        if tokens is not None:
            inputs = with_tokens(inputs, np.asarray(tokens)[self.usable], int(self.usable.sum()))
        return inputs, notes

    def frame(self, table: pd.DataFrame) -> pd.DataFrame:
        """The usable rows of `table` (the table these rows were taken from), renumbered from 0."""
        return table[self.usable].reset_index(drop=True)

    def digest(self, positions: np.ndarray | None = None) -> str:
        """Identity of the evaluation set (which samples, which labels) that reveals neither; `positions` (into
        these rows) restricts it to a subset, e.g. the rows a transfer run scored."""
        chosen = slice(None) if positions is None else positions
        digest = hashlib.sha256()
        pairs = zip(map(str, self.sample_ids[chosen]), map(str, self.labels[chosen]), strict=True)
        for sample, label in sorted(pairs):
            digest.update(f"{sample}\t{label}\n".encode())
        return digest.hexdigest()[:16]


def _labels(table: pd.DataFrame, target: str, task_type: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    if len(table) == 0:
        return np.array([]), np.zeros(0, dtype=bool), ["no embedded samples"]
    column = table[target]
    if task_type == "regression":
        labels, usable, notes = _targets(column, target)
    else:
        usable, notes = column.notna().to_numpy(), []
        texts = [class_label(value) for value in column[usable]]
        whole = integer_labels(texts)
        labels = whole if whole is not None else np.array(texts, dtype=object)
    missing = int(column.isna().sum())
    if missing:
        notes.append(f"{missing} row(s) without a '{target}' label were left out")
    return labels, usable, notes


def _targets(column: pd.Series, target: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Regression targets that are numbers within ±`MAX_TARGET`; the rows left out, counted by reason."""
    values = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    present = column.notna().to_numpy()
    not_numbers = present & np.isnan(values)
    out_of_range = ~np.isnan(values) & ~(np.abs(values) <= MAX_TARGET)
    notes: list[str] = []
    if not_numbers.any():
        notes.append(f"{int(not_numbers.sum())} row(s) with a non-numeric '{target}' were left out")
    if out_of_range.any():
        notes.append(f"{int(out_of_range.sum())} row(s) with a '{target}' that is infinite or beyond "
                     f"±{MAX_TARGET:.0e} were left out (squared errors of such values overflow)")
    usable = present & ~not_numbers & ~out_of_range
    return values[usable], usable, notes
