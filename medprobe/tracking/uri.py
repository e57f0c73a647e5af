"""Tracking URIs: anchored once (a relative SQLite file), and shown without credentials or local folders."""

from __future__ import annotations

import re
from pathlib import Path

SQLITE = "sqlite:///"


def normalise_uri(uri: str, base: Path | None = None) -> str:
    """`sqlite:///mlflow.db` is relative in SQLAlchemy's reading; anchor it at `base` (default: the current
    folder) so every command, and MLflow's artifact root beside it, agree on one file. Other URIs pass."""
    if uri.startswith(SQLITE) and not uri.startswith(SQLITE + "/"):
        path = Path(uri[len(SQLITE) :]).expanduser()
        if not path.is_absolute():
            path = ((base or Path.cwd()) / path).resolve()
        return SQLITE + str(path)
    return uri


def redacted_uri(uri: str) -> str:
    """Credentials removed, and a local SQLite file reduced to its name."""
    uri = re.sub(r"//[^/@]+@", "//***@", uri)
    if uri.startswith(SQLITE):
        return SQLITE + uri.rsplit("/", 1)[-1]
    return uri
