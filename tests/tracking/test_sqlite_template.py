"""A new SQLite store is a copy of a migrated template kept in the user's cache: the same database as MLflow's
own migration writes, made once even by processes that start together, made again when damaged, and never
used for a database that already exists or where the cache folder cannot be written."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking._tracking_service.utils import _get_store

from medprobe.tracking.sqlite_schema import TEMPLATE_DB, ensure_schema, schema_ready, template_folder

EXPERIMENT_TIMES = ("creation_time", "last_update_time")
TABLE_CONSTRAINTS = ("CONSTRAINT ", "CHECK ", "FOREIGN KEY", "UNIQUE ", "PRIMARY KEY")


def table_definition(sql: str) -> tuple[list[str], list[str]]:
    """Columns in order and the table's constraints as a set: MLflow's own migrations write the constraints in
    an order that changes with the hash seed (two migrations in place differ the same way)."""
    lines = [line.strip().rstrip(",").strip() for line in sql.splitlines()]
    constraints = sorted(line for line in lines if line.startswith(TABLE_CONSTRAINTS))
    return [line for line in lines if not line.startswith(TABLE_CONSTRAINTS)], constraints


def contents(path: Path) -> dict[str, object]:
    """Every table's definition and rows; the Default experiment's times left out (they are the clock's)."""
    connection = sqlite3.connect(path)
    try:
        found: dict[str, object] = {}
        for name, sql in connection.execute("SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'index') "
                                            "AND name NOT LIKE 'sqlite_%' ORDER BY name"):
            found[f"schema:{name}"] = table_definition(sql or "")
        for (table,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name"):
            cursor = connection.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            rows = [{c: v for c, v in zip(columns, row, strict=True)
                     if not (table == "experiments" and c in EXPERIMENT_TIMES)} for row in cursor]
            found[f"rows:{table}"] = sorted(rows, key=repr)
        return found
    finally:
        connection.close()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


def test_a_store_from_the_template_equals_one_migrated_in_place(tmp_path: Path, cache: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    copied = tmp_path / "stores" / "copied.db"
    assert ensure_schema(f"sqlite:///{copied}")
    assert (template_folder() / TEMPLATE_DB).is_file() and template_folder().is_relative_to(cache)

    (tmp_path / "not-a-folder").write_text("")  # the cache cannot be made under a file: migrate in place
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "not-a-folder" / "cache"))
    migrated = tmp_path / "stores" / "migrated.db"
    assert ensure_schema(f"sqlite:///{migrated}")
    assert not (tmp_path / "not-a-folder").is_dir() and schema_ready(migrated)

    assert contents(copied) == contents(migrated)
    with sqlite3.connect(copied) as connection:
        (location, created, updated), = connection.execute(
            "SELECT artifact_location, creation_time, last_update_time FROM experiments WHERE experiment_id = 0")
        assert connection.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
    assert location == _get_store(f"sqlite:///{copied}")._get_artifact_location(0)
    assert created == updated and created > 0


def test_a_damaged_template_is_made_again(tmp_path: Path, cache: Path) -> None:
    ensure_schema(f"sqlite:///{tmp_path / 'first.db'}")
    template = template_folder() / TEMPLATE_DB
    good = template.read_bytes()
    template.write_bytes(good[:4096] + b"\0" * (len(good) - 4096))

    assert ensure_schema(f"sqlite:///{tmp_path / 'second.db'}")
    assert schema_ready(tmp_path / "second.db")
    assert contents(tmp_path / "second.db") == contents(tmp_path / "first.db")
    assert template.read_bytes() != good[:4096] + b"\0" * (len(good) - 4096)


def test_an_existing_database_is_migrated_in_place_not_replaced(tmp_path: Path, cache: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE kept (value TEXT)")
        connection.execute("INSERT INTO kept VALUES ('here before')")
    connection.close()
    assert ensure_schema(f"sqlite:///{path}")
    assert schema_ready(path)
    with sqlite3.connect(path) as connection:
        assert connection.execute("SELECT value FROM kept").fetchall() == [("here before",)]
    connection.close()
    assert not template_folder().exists()


@pytest.mark.slow
def test_processes_starting_together_with_an_empty_cache_share_one_template(tmp_path: Path, cache: Path) -> None:
    script = ("import sys; from medprobe.tracking.sqlite_schema import ensure_schema; "
              "print(ensure_schema(sys.argv[1]))")
    uris = [f"sqlite:///{tmp_path / 'stores' / f'{name}.db'}" for name in ("a", "a", "b")]
    processes = [subprocess.Popen([sys.executable, "-c", script, uri], stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True) for uri in uris]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    assert all(process.returncode == 0 for process in processes), outputs
    assert sorted(output.strip().splitlines()[-1] for output in outputs) == ["False", "True", "True"]
    assert all(schema_ready(tmp_path / "stores" / f"{name}.db") for name in ("a", "b"))
    # one template, and no folder left from a build that lost a race (MLflow's own log lines are not counted:
    # whether they are printed depends on the logging set-up the processes inherit)
    assert [p.name for p in template_folder().parent.iterdir() if p.is_dir()] == [template_folder().name]
