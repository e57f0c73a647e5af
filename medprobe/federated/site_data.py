"""One site's view of its embedding table: features and labels, split into train and test rows.

This is the only module that reads a table, and it runs at the site: sample ids and subject ids are dropped here
and never reach a message.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from medprobe.embed.table import read_table
from medprobe.errors import MedprobeError
from medprobe.evaluation.rows import TaskRows
from medprobe.split_column import fit_rows, test_rows


@dataclass(frozen=True)
class SiteData:
    site: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    model: str
    encoder_fingerprint: str


def load_site(path: Path | str, target: str, site: str = "") -> SiteData:
    """The rows of `TaskRows` (the rule every protocol uses): train rows are the train and val split (every
    labelled row when the table has no split, or a blank one), test rows the test split. Labels are the table's
    own values: the federated label map and the ridge targets read them.

    The site name is `site`, else the table's `site` column (when it holds one value), else the file stem.
    Cached per (path, modification time, target): a site node answers several messages per job.
    """
    path = Path(path)
    if not path.is_file():
        raise MedprobeError(f"{path}: embedding table not found (check the node's `table` setting)")
    return _load(str(path.resolve()), os.stat(path).st_mtime_ns, target, site)


@lru_cache(maxsize=4)
def _load(path: str, _mtime: int, target: str, site: str) -> SiteData:
    frame, X, metadata = read_table(Path(path))
    if target not in frame.columns:
        raise MedprobeError(f"{path}: no target column {target!r}; found {sorted(frame.columns)}")
    rows = TaskRows.of(frame, target, "classification")
    X, y = X[rows.usable], frame[target].to_numpy()[rows.usable]
    train, test = fit_rows(rows.split, len(y)), test_rows(rows.split, len(y))
    return SiteData(
        site=site or _site_name(frame, Path(path)),
        X_train=X[train], y_train=y[train], X_test=X[test], y_test=y[test],
        model=str(metadata.get("model", "")), encoder_fingerprint=str(metadata.get("encoder_fingerprint", "")),
    )


def _site_name(frame, path: Path) -> str:
    if "site" in frame.columns:
        names = frame["site"].dropna().astype(str).unique()
        if len(names) == 1:
            return str(names[0])
    return path.stem
