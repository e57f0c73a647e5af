"""The workdir's subject salt: one salt however many jobs start at once, never empty, never silently replaced."""

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from medprobe.embed.pseudonyms import SALT_ENV, SALT_FILE, site_salt
from medprobe.errors import MedprobeError

ROUNDS = 20
JOBS = 4


def _job(workdir: str, start, results) -> None:
    start.wait()
    try:
        results.put(site_salt(Path(workdir)).decode())
    except BaseException as exc:  # noqa: BLE001 - reported to the test, whatever it is
        results.put(f"ERROR {type(exc).__name__}: {exc}")


@pytest.mark.slow
def test_jobs_starting_together_on_a_fresh_workdir_share_one_salt(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(SALT_ENV, raising=False)
    context = multiprocessing.get_context("fork")  # real processes, started within microseconds of each other
    for round_ in range(ROUNDS):
        workdir = tmp_path / f"round{round_}" / "work"  # not even the folder exists yet
        start, results = context.Barrier(JOBS), context.Queue()
        jobs = [context.Process(target=_job, args=(str(workdir), start, results)) for _ in range(JOBS)]
        for job in jobs:
            job.start()
        salts = [results.get(timeout=30) for _ in jobs]
        for job in jobs:
            job.join(timeout=30)
            assert job.exitcode == 0
        assert not [s for s in salts if s.startswith("ERROR")], salts
        assert len(set(salts)) == 1 and len(salts[0]) == 64, salts
        assert (workdir / SALT_FILE).read_text() == salts[0]
        assert sorted(p.name for p in workdir.iterdir()) == [SALT_FILE]  # no temporary file left
        assert (workdir / SALT_FILE).stat().st_mode & 0o777 == 0o600


def test_the_salt_is_kept_across_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(SALT_ENV, raising=False)
    assert site_salt(tmp_path) == site_salt(tmp_path)


@pytest.mark.parametrize("content", ["", "\n", "0123456789abcdef"])
def test_an_empty_or_short_salt_file_is_an_error_that_says_what_to_do(tmp_path: Path, monkeypatch,
                                                                       content: str) -> None:
    monkeypatch.delenv(SALT_ENV, raising=False)
    salt_file = tmp_path / SALT_FILE
    salt_file.write_text(content)
    old = time.time() - 3600
    os.utime(salt_file, (old, old))  # not a salt another process is writing right now
    with pytest.raises(MedprobeError) as raised:
        site_salt(tmp_path)
    message = str(raised.value)
    assert str(salt_file) in message and "\n" not in message
    assert "backup" in message and "delete it only if no results were produced" in message
    assert salt_file.read_text() == content  # never replaced


def test_a_short_salt_in_the_environment_is_an_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(SALT_ENV, "pepper")
    with pytest.raises(MedprobeError, match=r"MEDPROBE_SUBJECT_SALT holds 6 character\(s\).*at least 16"):
        site_salt(tmp_path)
    monkeypatch.setenv(SALT_ENV, "")
    with pytest.raises(MedprobeError, match="at least 16"):
        site_salt(tmp_path)
    monkeypatch.setenv(SALT_ENV, "sixteen-chars-ok")
    assert site_salt(tmp_path) == b"sixteen-chars-ok" and not (tmp_path / SALT_FILE).exists()
