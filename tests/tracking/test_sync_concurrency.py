"""Two `medprobe sync` of one bundle at the same moment, against a real `mlflow server`, create each run once.

Each of two real processes imports everything first, then, round after round, waits for the test's cue and syncs
that round's bundle, so that both reach the server together (the race that the per-bundle lock and the look-up by
run identity close). Several rounds, each with a fresh bundle, make one lucky ordering unlikely to hide a
duplicate; the processes start once, because importing MLflow twice per round would dominate the test's time.
Without the lock (with the look-up alone) this test saw most runs created twice: 15 of 16 in one try.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.tracking.bundles import runs_per_uid, write_bundle

ROUNDS = 4
WAIT_S = 90
_SYNC_ON_CUE = """
import sys, time
from pathlib import Path
import medprobe.cli.sync_command, medprobe.jobs.workdir_lock, medprobe.tracking.sync  # before any cue
from medprobe.cli.main import main
folder, index, uri, bundles = Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
(folder / f"ready-{index}").touch()
for round_number, bundle in enumerate(bundles):
    while not (folder / f"go-{round_number}").exists():
        time.sleep(0.001)
    code = main(["sync", bundle, "--tracking-uri", uri])
    sys.stdout.flush()
    (folder / f"done-{round_number}-{index}").write_text(str(code))
"""


def _wait_for(paths: list[Path], processes: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not all(path.exists() for path in paths):
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes), \
            [p.communicate()[1][-3000:] for p in processes if p.poll() is not None]
        time.sleep(0.01)


@pytest.mark.slow
def test_concurrent_syncs_create_each_run_once(tmp_path: Path, mlflow_server) -> None:
    bundles = [write_bundle(tmp_path / f"round-{n}") for n in range(ROUNDS)]
    expected = {record["uid"] for bundle in bundles for record in bundle.runs()}
    processes = [subprocess.Popen([sys.executable, "-c", _SYNC_ON_CUE, str(tmp_path), str(index),
                                   mlflow_server.uri, *(str(b.root) for b in bundles)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for index in range(2)]
    try:
        _wait_for([tmp_path / f"ready-{index}" for index in range(2)], processes)
        for round_number in range(ROUNDS):
            (tmp_path / f"go-{round_number}").touch()
            done = [tmp_path / f"done-{round_number}-{index}" for index in range(2)]
            _wait_for(done, processes)
            assert [path.read_text() for path in done] == ["0", "0"]
        outputs = [p.communicate(timeout=WAIT_S)[0] for p in processes]
    finally:
        for process in processes:
            process.kill()
    created = sum(int(line.split(": ")[1].split(" run(s)")[0]) for out in outputs for line in out.splitlines())
    counts = runs_per_uid(mlflow_server.uri)
    duplicates = {uid: n for uid, n in counts.items() if n > 1}
    assert not duplicates, f"runs created more than once: {duplicates}"
    assert set(counts) == expected and created == len(expected)
