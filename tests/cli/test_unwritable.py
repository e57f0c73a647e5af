"""A folder the command cannot write ends with exit 2 and one line saying what to do, never a traceback: the usual
first error of a container whose bind-mounted /work belongs to another user."""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from medprobe.cli.main import main
from medprobe.cli.unwritable import unwritable_message
from medprobe.exit_codes import EXIT_USER_ERROR


@pytest.fixture
def unwritable_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody may create files in: mode 555, and for root (whom modes do not stop) the immutable flag."""
    folder = tmp_path / "work"
    folder.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
            pytest.skip("running as root on a file system without chattr +i: no folder root cannot write")
    else:
        folder.chmod(0o555)
    try:
        yield folder
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        folder.chmod(0o755)


def test_an_unwritable_output_folder_is_one_line_and_exit_2(unwritable_folder: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--out", str(unwritable_folder / "demo"), "--subjects", "8", "--no-progress"]) == \
        EXIT_USER_ERROR
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"medprobe: error: cannot write {unwritable_folder / 'demo'}: ")
    assert ":U" in lines[0] and "--user" in lines[0] and "chown" in lines[0]


@pytest.mark.parametrize(("number", "wanted"), [(errno.EACCES, "permission denied for user"),
                                                (errno.EPERM, "permission denied for user"),
                                                (errno.EROFS, "read-only")])
def test_the_message_says_what_to_do(number: int, wanted: str) -> None:
    message = unwritable_message(OSError(number, os.strerror(number), "/work/site-a"))
    assert message is not None and message.startswith("cannot write /work/site-a: ") and wanted in message


@pytest.mark.parametrize("error", [OSError(errno.ENOENT, "No such file", "/work/x"), OSError(errno.EACCES, "denied"),
                                   OSError("no errno")])
def test_other_os_errors_are_not_this_problem(error: OSError) -> None:
    assert unwritable_message(error) is None


def test_no_writable_temporary_folder_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    import tempfile

    def no_usable_folder() -> str:
        raise FileNotFoundError(errno.ENOENT, "No usable temporary directory found in ['/tmp']")

    monkeypatch.setattr(tempfile, "gettempdir", no_usable_folder)
    assert main(["demo", "--out", str(tmp_path / "demo")]) == EXIT_USER_ERROR
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "--tmpfs /tmp" in lines[0] and "TMPDIR" in lines[0], lines
    assert not (tmp_path / "demo").exists()
