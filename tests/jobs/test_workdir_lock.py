"""One job per workdir: a second job refuses at once, naming the holder; a dead holder's lock is taken over."""

import errno
import json
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medprobe.cli.main import main
from medprobe.errors import MedprobeError
from medprobe.jobs import workdir_lock
from medprobe.jobs.workdir_lock import LOCK_FILE, WorkdirBusyError, hold_workdir

HOLD = """
import sys
from pathlib import Path
from medprobe.jobs.workdir_lock import hold_workdir
with hold_workdir(Path(sys.argv[1])):
    print("held", flush=True)
    sys.stdin.read()
"""


def _holder(workdir: Path) -> subprocess.Popen:
    """Another process holding `workdir` until its stdin closes."""
    job = subprocess.Popen([sys.executable, "-c", HOLD, str(workdir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           text=True)
    assert job.stdout is not None and job.stdout.readline().strip() == "held"
    return job


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_second_job_refuses_at_once_and_names_the_holder(tmp_path: Path) -> None:
    job = _holder(tmp_path / "work")
    try:
        started = time.monotonic()
        with pytest.raises(WorkdirBusyError) as raised, hold_workdir(tmp_path / "work"):
            pass
        assert time.monotonic() - started < 1.0
        message = str(raised.value)
        assert isinstance(raised.value, MedprobeError) and "\n" not in message
        assert str(tmp_path / "work") in message and f"pid {job.pid} on {socket.gethostname()}" in message
        assert "started 20" in message and "wait for it to finish" in message and "another workdir" in message
    finally:
        job.communicate("")
    with hold_workdir(tmp_path / "work") as me:  # released when the holder ended
        assert json.loads((tmp_path / "work" / LOCK_FILE).read_text())["pid"] == me.pid == os.getpid()
    assert (tmp_path / "work" / LOCK_FILE).read_text() == ""


def test_medprobe_embed_refuses_a_busy_output_folder(tmp_path: Path, capsys) -> None:
    job = _holder(tmp_path / "out")
    try:
        code = main(["embed", "--model", "handcrafted", "--manifest", str(tmp_path / "none.csv"), "--out",
                     str(tmp_path / "out"), "--site", "s", "--no-progress"])
    finally:
        job.communicate("")
    assert code == 2
    error = capsys.readouterr().err
    assert f"{tmp_path / 'out'} is in use by another medprobe job (pid {job.pid}" in error
    assert not (tmp_path / "out" / "cache").exists()  # refused before anything was written


def test_the_lock_of_a_killed_job_is_taken_over(tmp_path: Path) -> None:
    job = _holder(tmp_path / "work")
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert json.loads((tmp_path / "work" / LOCK_FILE).read_text())["pid"] == job.pid  # its details stay behind
    with hold_workdir(tmp_path / "work") as me:
        assert me.pid == os.getpid()


def test_a_stale_lock_file_from_a_dead_pid_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": _dead_pid(), "host": socket.gethostname(),
                                                  "started": "2020-01-01T00:00:00+00:00"}))
    with hold_workdir(tmp_path):
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_one_process_cannot_hold_a_workdir_twice(tmp_path: Path) -> None:
    with hold_workdir(tmp_path), pytest.raises(WorkdirBusyError, match=f"pid {os.getpid()}"), hold_workdir(tmp_path):
        pass


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def test_forked_children_do_not_keep_the_lock(tmp_path: Path) -> None:
    """DataLoader workers are forked while a job holds its workdir; the lock must end with the job."""
    child = multiprocessing.get_context("fork").Process(target=_sleep, args=(30,))
    with hold_workdir(tmp_path):
        child.start()
    try:
        job = _holder(tmp_path)  # the child still runs, the lock is free
        job.communicate("")
    finally:
        child.kill()
        child.join()


def test_without_file_locks_the_pid_in_the_file_decides(tmp_path: Path, monkeypatch) -> None:
    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(workdir_lock.fcntl, "flock", no_locks)
    live = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": live.pid, "host": socket.gethostname(),
                                                      "started": "2020-01-01T00:00:00+00:00"}))
        with pytest.raises(WorkdirBusyError, match=f"pid {live.pid}"), hold_workdir(tmp_path):
            pass
    finally:
        live.communicate(b"")
    with hold_workdir(tmp_path):  # that pid is gone now
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_a_workdir_that_cannot_be_created_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    with pytest.raises(MedprobeError, match="cannot create or lock the workdir lock file"), \
            hold_workdir(tmp_path / "a-file" / "work"):
        pass


def test_medprobe_run_and_transfer_refuse_a_workdir_another_job_holds(volume_dataset, write_spec, tmp_path: Path,
                                                                     capsys) -> None:
    spec = write_spec(volume_dataset(n=4), protocols={"linear": {"bootstrap": 0}})
    holder = _holder(tmp_path / "work")
    try:
        assert main(["run", str(spec), "--no-progress"]) == 2
        assert "work" in capsys.readouterr().err
        assert not (tmp_path / "work" / "bundles").exists() and not (tmp_path / "mlflow.db").exists()
    finally:
        holder.communicate(input="")
