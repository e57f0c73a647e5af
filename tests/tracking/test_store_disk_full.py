"""A tracking store on a full disk: the job stops with one line naming the store and exit 2 (never a traceback or a
silent fall-back to the bundle), and a later run on a disk with room completes."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from medprobe.cli.main import main
from medprobe.tracking.store import TrackingStore


@pytest.fixture
def small_disk(tmp_path: Path):
    folder = tmp_path / "store"
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_tracking_store_is_a_clear_user_error(small_disk: Path, volume_dataset, write_spec, capsys) -> None:
    uri = f"sqlite:///{small_disk / 'mlflow.db'}"
    TrackingStore(uri)  # the schema fits; then the disk is filled up to a few kilobytes
    free = shutil.disk_usage(small_disk).free
    with open(small_disk / "filler", "wb") as handle:
        handle.write(b"\0" * max(free - 12 * 1024, 0))
        os.fsync(handle.fileno())
    spec = write_spec(volume_dataset(n=8), tracking={"uri": uri}, protocols={"linear": {"bootstrap": 0}})
    assert main(["run", str(spec), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "no space left" in err and str(small_disk) in err and "Traceback" not in err

    (small_disk / "filler").unlink()
    assert main(["run", str(spec), "--no-progress"]) == 0
