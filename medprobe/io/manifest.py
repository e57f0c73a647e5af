"""The manifest: one row per image, CSV or Parquet, with `path`, `subject_id`, optional `site`/`split`/`sample_id`/
`series_uid`, labels.

`series_uid` selects one series (by its SeriesInstanceUID) in a DICOM folder that holds several, such as a whole
study; blank cells mean "the folder holds one series" (or the path is a file). It is read as text, so a UID is
never turned into a number, and checked for the form of a UID (digits separated by dots, at most 64 characters).
UIDs identify a patient's study: errors name the rows, never the values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from medprobe.errors import ManifestError
from medprobe.split_column import SPLIT_NAMES

REQUIRED_COLUMNS = ("path", "subject_id")
OPTIONAL_COLUMNS = ("site", "split", "sample_id", "series_uid")
#: DICOM's UI value representation: digits and dots, at most 64 characters (leading zeros tolerated: real exports
#: have them, and the value only has to equal the files' own).
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_UID_MAX = 64


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
        unknown = sorted(set(table["split"].dropna()) - set(SPLIT_NAMES))
        if unknown:
            raise ManifestError(f"{path}: column 'split' has unknown value(s) {unknown}; use train, val or test")
    if "series_uid" in table.columns:
        table["series_uid"] = _series_uids(path, table["series_uid"])
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
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype={"series_uid": str})
    except Exception as exc:  # noqa: BLE001 - pandas/pyarrow raise many types for a bad file
        raise ManifestError(f"{path}: cannot read the manifest table ({type(exc).__name__}: {exc})") from None
    raise ManifestError(f"{path}: manifest must be .csv, .tsv or .parquet (got '{suffix or 'no extension'}')")


def _series_uids(path: Path, column: pd.Series) -> pd.Series:
    """Stripped UIDs as text, None for blank cells; a ManifestError naming the rows (not the values) of bad ones."""
    values = [None if v is None or pd.isna(v) or not str(v).strip() else str(v).strip() for v in column.astype(object)]
    bad = [i for i, v in zip(column.index, values, strict=True) if v is not None and (len(v) > _UID_MAX or
                                                                                     not _UID.match(v))]
    if bad:
        rows = ", ".join(str(i + 2) for i in bad[:5]) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")
        raise ManifestError(f"{path}: column 'series_uid' holds values that are not DICOM UIDs (digits separated by "
                            f"dots, at most {_UID_MAX} characters) in row(s) {rows} (row 1 is the header)")
    return pd.Series(values, index=column.index, dtype=object)
