"""What was skipped, written twice: a report that may be shared, and a local log that never leaves the site.

`quarantine.csv` names each skipped input by its salted sample pseudonym and says why in the closed vocabulary of
`medprobe.privacy.skip_reasons` (a category and its fixed explanation). `local-only/skipped-files.csv` adds what a
person at the site needs to fix the file (its path and the reading library's own message, which may quote file
names or header values); medprobe never logs, uploads or bundles anything under `local-only/`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from medprobe.embed.engine import Skipped
from medprobe.embed.files import atomic_write

QUARANTINE_FILE = "quarantine.csv"
#: The folder of a workdir (or `medprobe embed` output) that holds what must stay at the site.
LOCAL_ONLY_FOLDER = "local-only"
LOCAL_SKIP_LOG = "skipped-files.csv"
PUBLIC_COLUMNS = ["model", "sample_id", "category", "reason"]
LOCAL_COLUMNS = [*PUBLIC_COLUMNS, "path", "detail"]


def quarantine_rows(model: str, skipped: Sequence[Skipped], paths: Sequence[str]) -> list[dict[str, str]]:
    """One row per skipped input of `model`; `paths` are the manifest's, indexed by the inputs' positions."""
    return [{"model": model, "sample_id": s.sample_id, "category": s.cause.category, "reason": s.reason,
             "path": str(paths[s.position]), "detail": s.cause.detail} for s in skipped]


def write_quarantine(folder: Path, rows: Sequence[dict[str, str]]) -> Path | None:
    """Write `folder/quarantine.csv` (public columns) and `folder/local-only/skipped-files.csv` (all columns); with
    no rows, remove both (a re-run that skipped nothing leaves no stale report). Returns the public report's path."""
    public, local = folder / QUARANTINE_FILE, folder / LOCAL_ONLY_FOLDER / LOCAL_SKIP_LOG
    if not rows:
        public.unlink(missing_ok=True)
        local.unlink(missing_ok=True)
        return None
    frame = pd.DataFrame(list(rows), columns=LOCAL_COLUMNS)
    local.parent.mkdir(parents=True, exist_ok=True)
    for path, columns in ((local, LOCAL_COLUMNS), (public, PUBLIC_COLUMNS)):
        text = frame[columns].to_csv(index=False)
        with atomic_write(path, len(text.encode()), "the quarantine report") as pending:
            pending.path.write_text(text, encoding="utf-8")
    return public
