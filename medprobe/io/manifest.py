"""The manifest: one row per image, CSV or Parquet, with `path`, `subject_id`, optional `site`/`split`, labels."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from medprobe.errors import ManifestError

REQUIRED_COLUMNS = ("path", "subject_id")
OPTIONAL_COLUMNS = ("site", "split", "sample_id")
SPLIT_VALUES = frozenset({"train", "val", "test"})


def load_manifest(path: Path, required_labels: Iterable[str] = ()) -> pd.DataFrame:
    """Read and check a manifest; `path` becomes absolute (relative entries resolve against its folder).

    Raises ManifestError naming the file and the problem: missing file, unreadable table, missing columns
    (required ones or the label columns the tasks need), empty paths or subject IDs, unknown split values.
    """
    table = _read_table(path)
    missing = [c for c in (*REQUIRED_COLUMNS, *required_labels) if c not in table.columns]
    if missing:
        raise ManifestError(
            f"{path}: missing column(s) {', '.join(map(repr, missing))}; "
            f"found {', '.join(map(repr, map(str, table.columns)))}"
        )
    if table.empty:
        raise ManifestError(f"{path}: the manifest has no rows")
    for column in REQUIRED_COLUMNS:
        blank = table[column].isna() | (table[column].astype(str).str.strip() == "")
        if blank.any():
            rows = ", ".join(str(i + 2) for i in table.index[blank][:5])
            raise ManifestError(f"{path}: empty '{column}' in row(s) {rows} (row 1 is the header)")
    table["subject_id"] = table["subject_id"].astype(str)
    if "split" in table.columns:
        table["split"] = table["split"].astype("string").str.strip().str.lower()
        unknown = sorted(set(table["split"].dropna()) - SPLIT_VALUES)
        if unknown:
            raise ManifestError(f"{path}: column 'split' has unknown value(s) {unknown}; use train, val or test")
    base = path.resolve().parent
    table["path"] = [str(p if Path(p).is_absolute() else (base / p)) for p in table["path"].astype(str)]
    return table.reset_index(drop=True)


def _read_table(path: Path) -> pd.DataFrame:
    if not path.exists():
        raise ManifestError(f"{path}: manifest not found")
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in {".csv", ".tsv"}:
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",")
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many types for a bad file
        raise ManifestError(f"{path}: cannot read the manifest table ({type(exc).__name__}: {exc})") from None
    raise ManifestError(f"{path}: manifest must be .csv, .tsv or .parquet (got '{suffix or 'no extension'}')")
