"""Manifest checks for `medprobe validate` (and any job that wants them before it spends GPU time).

`validate_manifest` takes a table from `load_manifest` and returns a `ValidationReport`; nothing here prints.

*Problems* (the manifest cannot be used as it is; the CLI exits 3): missing, empty or unreadable files,
with `check_read` also images a job would skip (a 4D series without a 4D policy in the preprocessing: the chain's
own check, `medprobe.preprocess.volumes.volume_problem`), duplicate paths (the same path and series_uid), subjects
in more than one split of a site (patient leakage).
*Warnings* (worth knowing, not blocking): a split missing a class that its site has, a class with fewer than 2
subjects at a site, a label column without values.

Leakage is reported for the site's own staff, who must fix the manifest: each leaking subject with its own ID,
its manifest rows and its salted hash (`sub-` + 16 hex digits, the same value as the job's pseudonym given the
same salt). The report is printed where `validate` runs and is never sent anywhere; a job never logs it.
Elsewhere the report holds no subject ID. DICOM series UIDs (the manifest's series_uid) are used to read, never
copied into the report. Rows are numbered as in `load_manifest`'s messages: the header is row 1, the first data
row is row 2.
"""

from __future__ import annotations

import hashlib
import math
import os
import secrets
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from medprobe.embed.pseudonyms import pseudonym
from medprobe.evaluation.labels import class_label, merged_spellings
from medprobe.evaluation.rows import MAX_TARGET
from medprobe.split_column import table_split

if TYPE_CHECKING:
    from medprobe.preprocess.options import PreprocessOptions

#: Columns that are never labels.
NON_LABEL_COLUMNS = ("path", "subject_id", "site", "split", "sample_id", "series_uid")
#: A numeric label with more distinct values than this (or any non-integer value) is continuous.
MAX_CLASSES = 10
NO_VALUE = "(none)"
_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2}


@dataclass(frozen=True)
class FileIssue:
    path: str
    rows: list[int]
    reason: str


@dataclass(frozen=True)
class DuplicatePath:
    path: str
    rows: list[int]


@dataclass(frozen=True)
class IdenticalImages:
    """Rows of different subjects whose images are pixel-identical (same shape, same voxel values as read); a
    problem when they fall in different splits (the job refuses the later split's copies when their files are
    byte-identical, `medprobe.embed.duplicates`), a warning within one split."""

    rows: list[int]
    subjects: int
    splits: str  # "train+test", or the one split

    @property
    def across_splits(self) -> bool:
        return "+" in self.splits


@dataclass(frozen=True)
class LeakingSubject:
    """One subject with rows in more than one split: what the site's staff need to fix the manifest."""

    subject_id: str
    pseudonym: str
    splits: str  # "train+test"
    rows: list[int]


@dataclass(frozen=True)
class Leakage:
    """Subjects of one site with rows in more than one split."""

    site: str
    subjects: int
    #: split combination ("train+test") -> number of subjects
    combinations: dict[str, int]
    #: salted hashes of the first few leaking subjects, so the user can find them with the same salt
    hashes: list[str]
    #: every leaking subject with its own ID and manifest rows, in order of its first row
    details: list[LeakingSubject] = field(default_factory=list)


@dataclass(frozen=True)
class GroupSummary:
    site: str
    split: str
    rows: int
    subjects: int
    file_issues: int


@dataclass(frozen=True)
class LabelGroup:
    site: str
    split: str
    missing: int
    #: categorical: class -> rows
    counts: dict[str, int] = field(default_factory=dict)
    #: continuous: count, mean, min, max (None without values)
    stats: dict[str, float | int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class LabelSummary:
    column: str
    kind: str  # "categorical", "continuous" or "empty"
    classes: list[str]
    groups: list[LabelGroup]
    warnings: list[str]


@dataclass
class ValidationReport:
    manifest: str
    rows: int
    subjects: int
    sites: list[str]
    splits: list[str]
    read_checked: bool
    #: where the preprocessing `check_read` applied came from: a spec's data.preprocessing, or "" (the defaults)
    spec: str
    groups: list[GroupSummary]
    file_issues: list[FileIssue]
    duplicates: list[DuplicatePath]
    leakage: list[Leakage]
    labels: list[LabelSummary]
    identical: list[IdenticalImages] = field(default_factory=list)  # with `check_read` only

    @property
    def problems(self) -> list[str]:
        """One line per problem; empty when the manifest is clean."""
        lines = [f"{issue.reason}: {issue.path} (row(s) {_rows_text(issue.rows)})" for issue in self.file_issues]
        lines += [f"duplicate path on rows {_rows_text(d.rows)}: {d.path}" for d in self.duplicates]
        for leak in self.leakage:
            combos = ", ".join(f"{k}: {v}" for k, v in leak.combinations.items())
            more = f" (+{leak.subjects - len(leak.hashes)} more)" if leak.subjects > len(leak.hashes) else ""
            lines.append(f"patient leakage at site '{leak.site}': {leak.subjects} subject(s) in more than one split "
                         f"({combos}); subjects {', '.join(leak.hashes)}{more}")
            lines += [f"subject '{s.subject_id}' ({s.pseudonym}) at site '{leak.site}' is in {s.splits}: "
                      f"rows {_rows_text(s.rows, limit=10)}" for s in leak.details]
        lines += [_identical_text(group) for group in self.identical if group.across_splits]
        return lines

    @property
    def warnings(self) -> list[str]:
        identical = [_identical_text(group) for group in self.identical if not group.across_splits]
        return [*identical, *(warning for label in self.labels for warning in label.warnings)]

    @property
    def clean(self) -> bool:
        return not (self.file_issues or self.duplicates or self.leakage
                    or any(group.across_splits for group in self.identical))

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "clean": self.clean, "problems": self.problems, "warnings": self.warnings}


def validate_manifest(
    table: pd.DataFrame,
    manifest: str | Path = "",
    labels: Sequence[str] | None = None,
    check_read: bool = False,
    salt: bytes | None = None,
    data: PreprocessOptions | None = None,
    spec: str | Path = "",
) -> ValidationReport:
    """Run every check on a table from `load_manifest` (absolute paths, string subject IDs).

    `labels` picks the label columns (default: every column that is not path/subject_id/site/split/sample_id/
    series_uid); `check_read` reads each image with `read_image` (with the row's series_uid) instead of only
    checking existence and size, and applies the job's own checks from `data` (a spec's data section, named by
    `spec`: its 4D policy and `medprobe.preprocess.input_checks`; None: the default preprocessing, which skips 4D
    series, and only the checks that need no modality); `salt` keys the subject
    hashes (default: a one-off random salt, so hashes only match within this report).
    """
    salt = salt if salt is not None else secrets.token_bytes(32)
    sites, splits = group_columns(table)
    digests: dict[int, str] = {}
    file_issues = check_files(table, check_read, data, digests)
    bad_rows = {row for issue in file_issues for row in issue.rows}
    return ValidationReport(
        manifest=str(manifest),
        rows=len(table),
        subjects=int(table.groupby([sites, table["subject_id"]]).ngroups),
        sites=sorted(sites.unique()),
        splits=sorted(splits.unique(), key=_split_key),
        read_checked=check_read,
        spec=str(spec),
        groups=summarize_groups(table, bad_rows),
        file_issues=file_issues,
        duplicates=find_duplicate_paths(table),
        leakage=find_leakage(table, salt),
        labels=[summarize_label(table, column) for column in label_columns(table, labels)],
        identical=find_identical_images(table, digests),
    )


def label_columns(table: pd.DataFrame, requested: Sequence[str] | None = None) -> list[str]:
    if requested:
        return list(dict.fromkeys(requested))
    return [str(c) for c in table.columns if c not in NON_LABEL_COLUMNS]


def group_columns(table: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Site and split of every row as strings (the split read by `medprobe.split_column`); NO_VALUE where the column
    is absent or the cell is empty."""
    split = table_split(table)
    splits = pd.Series(NO_VALUE if split is None else split, index=table.index, dtype=object)
    return _text_column(table, "site"), splits.replace("", NO_VALUE)


def check_files(
    table: pd.DataFrame, check_read: bool = False, data: PreprocessOptions | None = None,
    digests: dict[int, str] | None = None,
) -> list[FileIssue]:
    """Missing or empty files (and folders); with `check_read`, also why each unreadable image fails and which
    images a job with `data` would skip (see `validate_manifest`), and into `digests` (manifest row number →
    digest) each readable image's pixel digest. A folder listed with several series_uid values is checked once per
    series."""
    rows_by_input: dict[tuple[str, str | None], list[int]] = {}
    for index, path, uid in zip(table.index, table["path"].astype(str), _series_uids(table), strict=True):
        rows_by_input.setdefault((path, uid), []).append(_row_number(index))
    issues = []
    for (path, uid), rows in rows_by_input.items():
        reason, digest = _file_problem(Path(path), check_read, uid, data)
        if digest is not None and digests is not None:
            digests.update(dict.fromkeys(rows, digest))
        if reason:
            issues.append(FileIssue(path, rows, reason))
    return issues


def find_duplicate_paths(table: pd.DataFrame) -> list[DuplicatePath]:
    """Paths (after normalising '.', '..' and doubled separators) listed on more than one row with the same
    series_uid (a study folder listed once per series is not a duplicate)."""
    rows_by_key: dict[tuple[str, str], list[int]] = {}
    for index, path, uid in zip(table.index, table["path"].astype(str), _series_uids(table), strict=True):
        rows_by_key.setdefault((os.path.normpath(path), uid or ""), []).append(_row_number(index))
    return [DuplicatePath(path, rows) for (path, _), rows in sorted(rows_by_key.items()) if len(rows) > 1]


def find_leakage(table: pd.DataFrame, salt: bytes) -> list[Leakage]:
    """Per site, the subjects whose rows fall in more than one split (rows without a split are ignored), each
    with its own ID and manifest rows (for the site's staff) and its salted hash."""
    if "split" not in table.columns:
        return []
    sites, splits = group_columns(table)
    frame = pd.DataFrame({"site": sites, "split": splits, "subject": table["subject_id"].astype(str)})
    frame = frame[frame["split"] != NO_VALUE]
    found = []
    for site, rows in frame.groupby("site", sort=True):
        per_subject = rows.groupby("subject", sort=False)["split"].agg(
            lambda s: "+".join(sorted(set(s), key=_split_key)))
        leaking = per_subject[per_subject.str.contains("+", regex=False)]
        if leaking.empty:
            continue
        combinations = {str(k): int(v) for k, v in leaking.value_counts().sort_index().items()}
        hashes = sorted(subject_hash(salt, str(s)) for s in leaking.index)[:5]
        details = [LeakingSubject(str(subject), subject_hash(salt, str(subject)), str(combination),
                                  [_row_number(i) for i in rows.index[rows["subject"] == subject]])
                   for subject, combination in leaking.items()]
        found.append(Leakage(str(site), len(leaking), combinations, hashes, details))
    return found


def subject_hash(salt: bytes, subject_id: str) -> str:
    """The job's own subject pseudonym (`medprobe.embed.pseudonyms.pseudonym`), so a person holding the salt
    finds the same value in the job's tables."""
    return pseudonym(salt, "sub", subject_id)


def summarize_groups(table: pd.DataFrame, bad_rows: Collection[int] = ()) -> list[GroupSummary]:
    """Rows, subjects and rows with a file issue (`bad_rows`, manifest row numbers) per site and split."""
    sites, splits = group_columns(table)
    bad_set = set(bad_rows)
    bad = pd.Series([_row_number(i) in bad_set for i in table.index], index=table.index)
    groups = []
    for (site, split), rows in table.groupby([sites, splits], sort=False).groups.items():
        groups.append(GroupSummary(str(site), str(split), len(rows), int(table.loc[rows, "subject_id"].nunique()),
                                   int(bad[rows].sum())))
    return sorted(groups, key=lambda g: (g.site, _split_key(g.split)))


def summarize_label(table: pd.DataFrame, column: str) -> LabelSummary:
    """Type of one label column, its counts (or statistics) per site and split, and its warnings."""
    values = table[column]
    present = values.dropna()
    if present.empty:
        return LabelSummary(column, "empty", [], [], [f"label '{column}' has no values"])
    numeric = pd.to_numeric(present, errors="coerce")
    if numeric.notna().all() and (numeric.nunique() > MAX_CLASSES or not np.all(np.mod(numeric, 1) == 0)):
        return _continuous(table, column)
    return _categorical(table, column)


def _continuous(table: pd.DataFrame, column: str) -> LabelSummary:
    sites, splits = group_columns(table)
    numbers = pd.to_numeric(table[column], errors="coerce")
    groups = []
    for (site, split), rows in numbers.groupby([sites, splits], sort=False):
        kept = rows.dropna()
        stats: dict[str, float | int | None] = {"count": len(kept), "mean": None, "min": None, "max": None}
        if len(kept):
            stats.update(mean=_rounded(kept.mean()), min=_rounded(kept.min()), max=_rounded(kept.max()))
        groups.append(LabelGroup(str(site), str(split), int(rows.isna().sum()), stats=stats))
    huge = int((numbers.abs() > MAX_TARGET).sum())
    warnings = [f"label '{column}': {huge} row(s) infinite or beyond ±{MAX_TARGET:.0e}; a regression task leaves "
                "them out"] if huge else []
    return LabelSummary(column, "continuous", [], _sorted_groups(groups), warnings)


def _categorical(table: pd.DataFrame, column: str) -> LabelSummary:
    sites, splits = group_columns(table)
    values = table[column]
    classes = values.map(class_label, na_action="ignore")
    all_classes = sorted(classes.dropna().unique(), key=_class_key)
    frame = pd.DataFrame({"site": sites, "split": splits, "cls": classes, "subject": table["subject_id"]})
    groups = []
    for (site, split), rows in frame.groupby(["site", "split"], sort=False):
        counts = rows["cls"].value_counts()
        groups.append(LabelGroup(str(site), str(split), int(rows["cls"].isna().sum()),
                                 counts={c: int(counts[c]) for c in sorted(counts.index, key=_class_key)}))
    warnings = _merged_numbers(column, values.dropna())
    labelled = frame.dropna(subset=["cls"])
    for site, rows in labelled.groupby("site", sort=True):
        site_classes = set(rows["cls"])
        if "split" in table.columns:
            for split, split_rows in rows[rows["split"] != NO_VALUE].groupby("split", sort=False):
                absent = sorted(site_classes - set(split_rows["cls"]), key=_class_key)
                if absent:
                    warnings.append(f"label '{column}' at site '{site}': split '{split}' has no rows of "
                                    f"{_classes(absent)}")
        subjects = rows.groupby("cls")["subject"].nunique()
        rare = sorted((c for c, n in subjects.items() if n < 2), key=_class_key)
        if rare:
            verb = "has" if len(rare) == 1 else "have"
            warnings.append(f"label '{column}' at site '{site}': {_classes(rare)} {verb} fewer than 2 subjects")
    return LabelSummary(column, "categorical", all_classes, _sorted_groups(groups), warnings)


def find_identical_images(table: pd.DataFrame, digests: dict[int, str]) -> list[IdenticalImages]:
    """Groups of rows with one pixel digest and two or more subjects (of one site), in order of their first row."""
    if not digests:
        return []
    sites, splits = group_columns(table)
    by_row = {_row_number(index): (site, str(subject), split)
              for index, site, subject, split in zip(table.index, sites, table["subject_id"], splits, strict=True)}
    groups: dict[tuple[str, str], list[int]] = {}
    for row, digest in sorted(digests.items()):
        groups.setdefault((by_row[row][0], digest), []).append(row)
    found = []
    for rows in groups.values():
        subjects = {by_row[row][1] for row in rows}
        if len(subjects) < 2:
            continue
        named = sorted({by_row[row][2] for row in rows} - {NO_VALUE}, key=_split_key)
        found.append(IdenticalImages(rows, len(subjects), "+".join(named) if named else NO_VALUE))
    return found


def _identical_text(group: IdenticalImages) -> str:
    where = (f"in different splits ({group.splits}): patient leakage; a job refuses the later split's copies of "
             "byte-identical files" if group.across_splits else f"within one split ({group.splits})")
    return (f"{len(group.rows)} pixel-identical images under {group.subjects} different subjects, {where}: rows "
            f"{_rows_text(group.rows, limit=10)}")


def _file_problem(path: Path, check_read: bool, series_uid: str | None,
                  data: PreprocessOptions | None) -> tuple[str | None, str | None]:
    """(why the job would not use the file, its pixel digest when it was read)."""
    try:
        if not path.exists():
            return "file not found", None
        if path.is_file() and path.stat().st_size == 0:
            return "file is empty (0 bytes)", None
        if path.is_dir() and not any(path.iterdir()):
            return "folder is empty", None
    except OSError as exc:
        return f"cannot access it ({exc.strerror or type(exc).__name__})", None
    if not check_read:
        return None, None
    from medprobe.errors import ReadError
    from medprobe.io import read_image
    from medprobe.io.dicom_header import quiet_pydicom

    try:
        with quiet_pydicom():
            image = read_image(path, series_uid=series_uid)
    except ReadError as exc:
        return f"unreadable ({exc.reason})", None
    except Exception as exc:  # noqa: BLE001 - a bad file is a finding, never a crash
        return f"unreadable (unexpected {type(exc).__name__}: {exc})", None
    pixels = hashlib.sha256(str(image.array.shape).encode())
    pixels.update(np.ascontiguousarray(image.array).tobytes())
    return _skipped_by_job(image, data), pixels.hexdigest()


def _skipped_by_job(image: Any, data: PreprocessOptions | None) -> str | None:
    """Why the job would skip a readable image: the chain's own 4D check, then its input checks (the size one
    against `preprocessing.size` only: the model's own input is known once it is built, and the job checks it)."""
    from medprobe.errors import ReadError
    from medprobe.preprocess.input_checks import InputCheck
    from medprobe.preprocess.input_spec import InputSpec
    from medprobe.preprocess.options import PreprocessOptions
    from medprobe.preprocess.volumes import SelectVolume, volume_problem, volumes_of

    volumes = volumes_of(image)
    if data is None:
        if volumes is not None:
            return (f"will be skipped unless data.preprocessing.volume_index or reduce_4d is set (4D series, "
                    f"{volumes} volumes on the 4th axis; --spec SPEC checks with the job's preprocessing)")
        data = PreprocessOptions(modality="other")
    prep = data.preprocessing
    problem = volume_problem(volumes, prep.volume_index, prep.reduce_4d)
    if problem:
        return f"will be skipped: {problem}"
    try:
        selected = SelectVolume(prep.volume_index, prep.reduce_4d)(image)
        InputCheck(data, InputSpec(spatial_dims=None, size=None))(selected)
    except ReadError as exc:
        return f"will be skipped ({exc.category}): {exc.reason}"
    return None


def _series_uids(table: pd.DataFrame) -> list[str | None]:
    """Each row's series_uid (None where the column is absent or the cell blank)."""
    if "series_uid" not in table.columns:
        return [None] * len(table)
    values = table["series_uid"].astype(object)
    return [(str(v).strip() or None) if v is not None and not pd.isna(v) else None for v in values]


def _text_column(table: pd.DataFrame, column: str) -> pd.Series:
    if column not in table.columns:
        return pd.Series(NO_VALUE, index=table.index, dtype=object)
    values = table[column].astype(object)
    return values.where(values.notna(), NO_VALUE).astype(str).str.strip().replace("", NO_VALUE)


def _sorted_groups(groups: list[LabelGroup]) -> list[LabelGroup]:
    return sorted(groups, key=lambda g: (g.site, _split_key(g.split)))


def _split_key(split: str) -> tuple[int, str]:
    return _SPLIT_ORDER.get(split, len(_SPLIT_ORDER)), split


def _class_key(name: str) -> tuple[int, float, str]:
    try:
        return 0, float(name), name
    except ValueError:
        return 1, 0.0, name


def _merged_numbers(column: str, values: pd.Series) -> list[str]:
    """A warning per number written more than one way: the job reads them as one class, so the user should know."""
    warnings = []
    for spellings in merged_spellings(values).values():
        shown = ", ".join(f"'{s}'" for s in spellings[:-1]) + f" and '{spellings[-1]}'"
        warnings.append(f"labels {shown} in column '{column}' are the same number; treated as one class")
    return warnings


def _classes(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(f"'{n}'" for n in names[:limit])
    more = f" (+{len(names) - limit} more)" if len(names) > limit else ""
    return f"{'class' if len(names) == 1 else 'classes'} {shown}{more}"


def _row_number(index: object) -> int:
    return int(index) + 2  # type: ignore[call-overload]


def _rows_text(rows: list[int], limit: int = 5) -> str:
    shown = ", ".join(map(str, rows[:limit]))
    return shown + (f" (+{len(rows) - limit} more)" if len(rows) > limit else "")


def _rounded(value: float) -> float | None:
    value = float(value)
    return float(f"{value:.6g}") if math.isfinite(value) else None
