"""Byte-identical images under different subjects: the classic route by which one patient's scan ends up in both
the training and the test split (exported twice, re-identified under a new ID, copied into another cohort).

Rows are compared by the content digest the cache keys on (a file's bytes, a DICOM folder's files and the series
it selects), so the check costs nothing beyond the hashing every job does. Where the copies fall in different
splits, the copies outside the earliest split (train, then val, then test, then rows with no split value) are
refused as `duplicate-image`; without a split column (cross-validation puts subjects in different folds) every
copy after the first subject's is refused. Copies within one split are kept and noted. Pixel-identical images
whose files differ (another header) are `medprobe validate --check-read`'s to find, and near-duplicates the
evaluation's (`medprobe.evaluation.near_duplicates`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import pandas as pd

from medprobe.privacy.skip_reasons import SkipReason
from medprobe.split_column import SPLIT_NAMES, table_split

DUPLICATE = "duplicate-image"


def duplicate_images(manifest: pd.DataFrame, digests: Sequence[str | None]) -> tuple[dict[int, SkipReason], list[str]]:
    """(row position → why it is refused, notes) for rows whose `digests` entry (None: not hashed) equals a row of
    another subject."""
    if "subject_id" not in manifest.columns:
        return {}, []
    subjects = manifest["subject_id"].astype(str).tolist()
    split = table_split(manifest)
    rows_by_digest: dict[str, list[int]] = defaultdict(list)
    for position, digest in enumerate(digests):
        if digest:
            rows_by_digest[digest].append(position)
    refused: dict[int, SkipReason] = {}
    within = 0
    for rows in rows_by_digest.values():
        if len({subjects[i] for i in rows}) < 2:
            continue
        if split is None:
            first = subjects[rows[0]]
            keep = {i for i in rows if subjects[i] == first}
        else:
            earliest = min(_split_rank(split[i]) for i in rows)
            keep = {i for i in rows if _split_rank(split[i]) == earliest}
        if len(keep) == len(rows):
            within += len(rows)
            continue
        for i in rows:
            if i not in keep:
                refused[i] = SkipReason(DUPLICATE, f"byte-identical to manifest row {min(keep) + 2} of another "
                                                   "subject in another split")
    notes = []
    if refused:
        notes.append(f"{len(refused)} image(s) are byte-identical to an image of another subject in another split: "
                     "refused as patient leakage (kept in the earliest split); check the manifest's subject IDs")
    if within:
        notes.append(f"{within} images are byte-identical across subjects within one split (kept): the same scan "
                     "under two subject IDs?")
    return refused, notes


def _split_rank(value: object) -> int:
    return SPLIT_NAMES.index(value) if value in SPLIT_NAMES else len(SPLIT_NAMES)
