"""Opening a tracking store only to read it, and finding an experiment in it by name.

`TrackingStore` creates what is missing (a SQLite file and its schema, a local `mlruns` folder), which a site
job needs and a command that only reads does not: a mistyped `sqlite:///` path would otherwise leave an empty
database behind and report an empty experiment. `open_for_reading` refuses a store that is not there, and
`find_experiment` answers an unknown experiment name with the experiments the store does hold.
"""

from __future__ import annotations

import difflib
import sqlite3
from pathlib import Path
from urllib.parse import urlparse

import requests
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

from medprobe.errors import MedprobeError, TrackingError
from medprobe.tracking.sqlite_schema import sqlite_path
from medprobe.tracking.store import TrackingStore
from medprobe.tracking.uri import normalise_uri, redacted_uri

#: Experiments named in the message for an unknown one; the rest are counted.
LISTED_EXPERIMENTS = 20
#: MLflow's own experiment; medprobe never writes to it, so it is not offered as a suggestion.
DEFAULT_EXPERIMENT = "Default"
_SERVER_FAILURES = (MlflowException, requests.RequestException, OSError)


class StoreNotFound(TrackingError):
    """The tracking store named by the URI does not exist (nothing was created)."""


class ExperimentNotFound(MedprobeError):
    """No experiment of that name; the message lists the ones there are."""


def open_for_reading(uri: str) -> TrackingStore:
    """The store behind `uri`, refusing a local store that does not exist instead of creating it.

    A `sqlite:///` URI must name an existing SQLite file that holds MLflow's tables; a local file-store path (no
    scheme, or `file:`) an existing folder. Other URIs (a tracking server, a database server) are opened as
    they are: the first call tells whether they answer. A relative SQLite path is read from the current folder."""
    uri = normalise_uri(uri)
    path = sqlite_path(uri)
    if path is not None:
        _check_sqlite_store(uri, path)
    elif (folder := _local_folder(uri)) is not None and not folder.is_dir():
        raise StoreNotFound(f"no tracking store at {uri} (the folder {folder} does not exist; a command that only "
                            "reads a store creates none; check --tracking-uri)")
    return TrackingStore(uri)


def find_experiment(store: TrackingStore, name: str) -> str:
    """The id of the active experiment `name`; otherwise an error that lists the store's experiments and the
    names closest to `name`."""
    try:
        found = store.client.get_experiment_by_name(name)
        if found is not None and found.lifecycle_stage == "active":
            return found.experiment_id
        names = experiment_names(store)
    except _SERVER_FAILURES as exc:
        raise TrackingError(f"cannot read the tracking store {redacted_uri(store.uri)}: "
                            f"{_one_line(exc)}") from None
    deleted = " (it was deleted; `mlflow experiments restore` brings it back)" if found is not None else ""
    raise ExperimentNotFound(f"experiment '{name}' not found in the tracking store {redacted_uri(store.uri)}"
                             f"{deleted}; {_suggestions(name, names)}")


def experiment_names(store: TrackingStore) -> list[str]:
    """Names of the store's active experiments, MLflow's empty Default experiment left out, sorted."""
    names: list[str] = []
    token: str | None = None
    while True:
        page = store.client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token)
        names.extend(e.name for e in page)
        token = page.token
        if not token:
            break
    return sorted(n for n in names if n != DEFAULT_EXPERIMENT)


def close_matches(name: str, names: list[str]) -> list[str]:
    """Names that end with `name` as a path component (`demo-brain-mri` → `medprobe/demo-brain-mri`), then the
    closest spellings."""
    lowered = name.lower().strip("/")
    suffix = [n for n in names if lowered and (n.lower() == lowered or n.lower().endswith("/" + lowered))]
    similar = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    return list(dict.fromkeys([*suffix, *similar]))


def _suggestions(name: str, names: list[str]) -> str:
    if not names:
        return "the store holds no experiments (has a site job logged to it?)"
    matches = close_matches(name, names)
    hint = f"did you mean {' or '.join(repr(m) for m in matches)}? " if matches else ""
    listed = ", ".join(repr(n) for n in names[:LISTED_EXPERIMENTS])
    more = f" and {len(names) - LISTED_EXPERIMENTS} more" if len(names) > LISTED_EXPERIMENTS else ""
    return f"{hint}experiments there: {listed}{more}"


def _check_sqlite_store(uri: str, path: Path) -> None:
    if not path.is_file():
        raise StoreNotFound(f"no tracking store at {uri} (the file {path} does not exist; a command that only "
                            "reads a store creates none; check --tracking-uri)")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        try:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise TrackingError(f"{path} is not a readable SQLite database ({exc}); check --tracking-uri") from None
    if not {"experiments", "runs"} <= tables:
        raise TrackingError(f"{path} is not an MLflow tracking store (it has no MLflow tables); check "
                            "--tracking-uri")


def _local_folder(uri: str) -> Path | None:
    """The folder of a local file-store URI (`mlruns`, `/abs/mlruns`, `file:///abs/mlruns`); None otherwise."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(parsed.path)
    if parsed.scheme == "" or (len(parsed.scheme) == 1 and uri[1:2] == ":"):  # a plain path (or a Windows drive)
        return Path(uri)
    return None


def _one_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split())[:300]
