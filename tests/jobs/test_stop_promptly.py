"""A SIGTERM is honoured within seconds at any stage of a job, also with a named pipe among its inputs (which once
hung the job for ever while it held the workdir lock)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from medprobe.jobs.workdir_lock import LOCK_FILE

#: How long a stopped job may take to exit once signalled.
GRACE_S = 10.0


@pytest.mark.slow
@pytest.mark.parametrize("delay_s", [0.0, 1.0, 3.0])
def test_sigterm_at_any_moment_ends_the_job_promptly(volume_dataset, write_spec, tmp_path: Path,
                                                       delay_s: float) -> None:
    """Signalled `delay_s` after the job holds its workdir (so past imports and spec checks: reading, hashing,
    embedding or probing, depending on the machine's speed)."""
    manifest = volume_dataset(n=24)
    fifo = manifest.parent / "pipe.nii.gz"
    os.mkfifo(fifo)
    frame = pd.read_csv(manifest)
    frame.loc[len(frame)] = {**frame.iloc[0].to_dict(), "path": fifo.name, "subject_id": "P-FIFO"}
    frame.to_csv(manifest, index=False)
    spec = write_spec(manifest, models=[{"name": "handcrafted"}, {"name": "dinov2_vits14"}],
                      protocols={"linear": {"bootstrap": 0}})
    process = subprocess.Popen([sys.executable, "-m", "medprobe.cli.main", "run", str(spec), "--no-progress"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / "work" / LOCK_FILE
    deadline = time.monotonic() + 120
    while not lock.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(delay_s)
    if process.poll() is not None:
        pytest.skip(f"the job finished within {delay_s} s of taking its workdir on this machine")
    process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    try:
        _, err = process.communicate(timeout=GRACE_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"the job ignored SIGTERM for {GRACE_S} s (signalled {delay_s} s after its start)")
    assert time.monotonic() - signalled < GRACE_S
    assert process.returncode == 143, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
