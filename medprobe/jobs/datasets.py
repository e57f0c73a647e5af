"""Selecting a job's rows from the manifest (which rows a task then uses is `medprobe.evaluation.TaskRows`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medprobe.errors import ManifestError


def site_rows(manifest: pd.DataFrame, site: str | None, source: Path) -> pd.DataFrame:
    """A manifest with a `site` column may hold several sites; a job keeps the rows of `site`. Without a `site`
    column every row is the site's; `site` None keeps every row."""
    if "site" not in manifest.columns or site is None:
        return manifest
    sites = manifest["site"].astype(str)
    if not (sites == site).any():
        found = ", ".join(sorted(sites.unique())[:10])
        raise ManifestError(f"{source}: column 'site' has no rows for site '{site}' (found: {found})")
    return manifest[sites == site].reset_index(drop=True)
