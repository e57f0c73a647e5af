"""Tracking URIs: chosen by one rule, anchored once (a relative SQLite file), and shown without credentials or local
folders."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import overload

SQLITE = "sqlite:///"
#: The environment variable every command reads (MLflow's own), so a scheduler or a shell sets it once.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


@overload
def chosen_uri(flag: str | None, fallback: str, environ: Mapping[str, str] | None = None) -> str: ...


@overload
def chosen_uri(flag: str | None, fallback: None = None, environ: Mapping[str, str] | None = None) -> str | None: ...


def chosen_uri(flag: str | None, fallback: str | None = None, environ: Mapping[str, str] | None = None) -> str | None:
    """The one rule of every command: its own flag (`--tracking-uri`, `--to`), else $MLFLOW_TRACKING_URI, else
    `fallback` (the spec's `tracking.uri`, or a command's own default such as `evaluate`'s store in its output
    folder); None when there is none (the command says what to pass)."""
    env = os.environ if environ is None else environ
    return flag or env.get(TRACKING_URI_ENV) or fallback


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
