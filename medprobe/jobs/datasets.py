"""Selecting a job's rows and a task's labels from the manifest and the embedding table."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from medprobe.errors import ManifestError
from medprobe.spec.pipeline import TaskSpec


def site_rows(manifest: pd.DataFrame, site: str, source: Path) -> pd.DataFrame:
    """A manifest with a `site` column may hold several sites; a site job keeps its own rows."""
    if "site" not in manifest.columns:
        return manifest
    sites = manifest["site"].astype(str)
    if not (sites == site).any():
        found = ", ".join(sorted(sites.unique())[:10])
        raise ManifestError(f"{source}: column 'site' has no rows for site '{site}' (found: {found})")
    return manifest[sites == site].reset_index(drop=True)


def labels_for_task(table: pd.DataFrame, task: TaskSpec) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Labels of the rows usable for `task`, the boolean mask of those rows, and notes on what was dropped."""
    if len(table) == 0:
        return np.array([]), np.zeros(0, dtype=bool), ["no embedded samples"]
    column = table[task.target]
    notes: list[str] = []
    if task.type == "regression":
        values = pd.to_numeric(column, errors="coerce")
        bad = int((values.isna() & column.notna()).sum())
        if bad:
            notes.append(f"{bad} row(s) with a non-numeric '{task.target}' were left out")
        usable = values.notna().to_numpy()
        labels = values.to_numpy(dtype=np.float64)[usable]
    else:
        usable = column.notna().to_numpy()
        kept = column[usable]
        numeric = pd.to_numeric(kept, errors="coerce")
        if numeric.notna().all() and np.all(np.mod(numeric, 1) == 0):
            labels = numeric.to_numpy().astype(np.int64)
        else:
            labels = kept.astype(str).to_numpy()
    missing = int((~usable).sum())
    if missing:
        notes.append(f"{missing} row(s) without a '{task.target}' label were left out")
    return labels, usable, notes


@dataclass(frozen=True)
class TaskRows:
    """The rows of an embedding table usable for one task, with what every probe needs of them."""

    labels: np.ndarray
    usable: np.ndarray  # boolean mask over the table's rows
    notes: list[str]  # what was left out, and why
    subjects: np.ndarray
    split: np.ndarray | None
    sample_ids: np.ndarray


def task_rows(table: pd.DataFrame, task: TaskSpec) -> TaskRows:
    """`labels_for_task` and the subject, split and sample columns of the same rows."""
    labels, usable, notes = labels_for_task(table, task)
    split = table["split"].to_numpy()[usable].astype(object) if "split" in table.columns else None
    return TaskRows(labels, usable, notes, table["subject_id"].to_numpy()[usable], split,
                    table["sample_id"].to_numpy()[usable])


def dataset_digest(sample_ids: np.ndarray, labels: np.ndarray) -> str:
    """Identity of an evaluation set (which samples, which labels) that reveals neither."""
    digest = hashlib.sha256()
    for sample, label in sorted(zip(map(str, sample_ids), map(str, labels), strict=True)):
        digest.update(f"{sample}\t{label}\n".encode())
    return digest.hexdigest()[:16]
