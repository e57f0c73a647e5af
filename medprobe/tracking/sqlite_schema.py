"""Create a SQLite tracking store's schema once, before parallel site jobs write to it.

MLflow's SqlAlchemyStore creates the tables and runs its migrations when it opens a database that lacks them;
several jobs opening a fresh file at the same moment all do so, and the losers fail half-way ("table already
exists", a duplicate Default experiment). medprobe initialises the file under an exclusive lock on
`<db>.lock`; once the schema is complete, opens take no lock and run no migration.

The migrations take seconds (more on a loaded machine), so a new store starts as a copy of a template: an empty
database migrated to the installed MLflow's schema, made once per user and MLflow version in
`$XDG_CACHE_HOME/medprobe/` (`~/.cache/medprobe/`) with its sha256 beside it, checked before each copy (a template
that fails the check is made again). The template holds the state MLflow reaches just before it adds the
`Default` experiment; MLflow then adds that row itself when it opens the copy, so the row's artifact location
and times are what a migration in place would have written. Where the cache folder cannot be written, the store
is migrated in place as before.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
import mlflow.store.db.utils  # imports every ORM model, so Base lists all of MLflow's tables
from mlflow.store.db.base_sql_model import Base
from mlflow.tracking._tracking_service.utils import _get_store

SQLITE_PREFIX = "sqlite:///"
TEMPLATE_DB, TEMPLATE_DIGEST = "store.db", "store.db.sha256"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI; None for other URIs and in-memory databases."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    path = uri[len(SQLITE_PREFIX) :].split("?", 1)[0]
    return None if path in ("", ":memory:") else Path(path)


def schema_ready(path: Path) -> bool:
    """All of MLflow's tables exist and the Default experiment is there (MLflow writes it last, after the
    migrations), so opening the file will not migrate it."""
    if not path.is_file() or path.stat().st_size == 0:
        return False
    try:
        with _read_only(path) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not set(Base.metadata.tables) <= tables:
                return False
            return connection.execute("SELECT 1 FROM experiments WHERE experiment_id = 0").fetchone() is not None
    except sqlite3.Error:
        return False


def ensure_schema(uri: str) -> bool:
    """Initialise the SQLite store behind `uri` if it has no complete schema yet; True when this call did it.
    A new (absent or empty) file starts as a copy of the migrated template; an existing one, perhaps written by
    an older MLflow, is migrated in place. Other URIs are left alone (a tracking server migrates its own
    database)."""
    path = sqlite_path(uri)
    if path is None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    if schema_ready(path):
        return False
    with _exclusive_lock(path.with_name(path.name + ".lock")):
        if schema_ready(path):
            return False
        if _is_new(path):
            _copy_template(path)
        # Building the store creates the tables and migrates to head (nothing to do on a copy of the template)
        # and adds the Default experiment; MLflow caches the store per URI, so this process's client reuses it.
        _get_store(uri)
        return True


def template_folder() -> Path:
    """Where the migrated template for the installed MLflow version is kept (made on first use)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "medprobe" / f"mlflow-{mlflow.__version__}-sqlite"


def _is_new(path: Path) -> bool:
    """No database yet: no file or an empty one, and no journal that SQLite would replay into a copy."""
    if path.is_file() and path.stat().st_size > 0:
        return False
    return not any(path.with_name(path.name + suffix).exists() for suffix in ("-journal", "-wal"))


def _copy_template(path: Path) -> None:
    """Put a copy of the template at `path` (written beside it, then renamed into place); `path` is left alone
    where no template could be read or made."""
    data = template_bytes()
    if data is None:
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def template_bytes() -> bytes | None:
    """An empty database at the installed MLflow's schema, without the Default experiment (whoever opens it
    adds that row with its own artifact root): the template's bytes, checked against its digest; made (under
    a lock, so once) when absent or damaged. None where the cache folder cannot be written."""
    folder = template_folder()
    data = _read_template(folder)
    if data is not None:
        return data
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with _exclusive_lock(folder.with_name(folder.name + ".lock")):
            data = _read_template(folder)
            if data is None:
                _make_template(folder)
                data = _read_template(folder)
    except OSError:
        return None
    return data


def _read_template(folder: Path) -> bytes | None:
    try:
        data = (folder / TEMPLATE_DB).read_bytes()
        expected = (folder / TEMPLATE_DIGEST).read_text(encoding="ascii").strip()
    except OSError:
        return None
    return data if hashlib.sha256(data).hexdigest() == expected else None


def _make_template(folder: Path) -> None:
    """Migrate an empty database in a folder of its own, then rename the folder into place: a reader sees the
    whole template or none."""
    building = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        database = building / TEMPLATE_DB
        engine = mlflow.store.db.utils.create_sqlalchemy_engine(f"{SQLITE_PREFIX}{database}")
        try:
            mlflow.store.db.utils._initialize_tables(engine)
        finally:
            engine.dispose()
        (building / TEMPLATE_DIGEST).write_text(hashlib.sha256(database.read_bytes()).hexdigest() + "\n",
                                                encoding="ascii")
        if folder.exists():  # damaged: its digest did not match
            shutil.rmtree(folder)
        os.rename(building, folder)
    finally:
        shutil.rmtree(building, ignore_errors=True)


@contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def _read_only(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        yield connection
    finally:
        connection.close()
