"""A job killed with SIGKILL mid-way resumes from its finished shards and ends with the same table."""

import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from medprobe.cli.main import main
from medprobe.embed import SHARD_SAMPLES_ENV, ShardCache, read_table

N = 40
SHARD = 4


def _pngs(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    rows = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(folder / f"im{i:03d}.png")
        rows.append({"path": f"im{i:03d}.png", "subject_id": f"P{i}", "label": i % 2})
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def _computed(output: str) -> int:
    return int(re.search(r"(\d+) computed", output).group(1))  # type: ignore[union-attr]


@pytest.mark.slow
def test_resume_after_sigkill_recomputes_nothing_finished(tmp_path: Path, monkeypatch, capsys, caplog) -> None:
    manifest = _pngs(tmp_path / "data", N)
    args = ["embed", "--model", "dinov2_vits14", "--option", "input_size=112", "--manifest", str(manifest),
            "--modality", "photo", "--site", "s1", "--precision", "fp32", "--batch-size", str(SHARD),
            "--workers", "0", "--no-progress"]
    monkeypatch.setenv(SHARD_SAMPLES_ENV, str(SHARD))
    monkeypatch.setenv("MEDPROBE_SUBJECT_SALT", "pepper-and-salt-2024")
    out = tmp_path / "out"
    job = subprocess.Popen([sys.executable, "-m", "medprobe.cli.main", *args, "--out", str(out)], env=os.environ,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while not list((out / "cache").glob("shard-*.parquet")):
        assert job.poll() is None, f"the job ended before writing a shard: {job.stderr.read().decode()[-2000:]}"
        assert time.monotonic() < deadline, "no shard within 180 s"
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()
    job.stderr.close()
    assert job.returncode == -signal.SIGKILL

    for shard in (out / "cache").glob("shard-*.parquet"):
        assert pq.read_table(shard).num_rows == SHARD  # only whole shards carry the final name
    done = len(ShardCache(out / "cache"))
    assert SHARD <= done < N, "the kill should land mid-way"

    caplog.set_level(logging.WARNING, logger="medprobe.embed")
    assert main([*args, "--out", str(out)]) == 0
    assert _computed(capsys.readouterr().out) == N - done
    assert not [r for r in caplog.records if "unreadable cache shard" in r.getMessage()]

    assert main([*args, "--out", str(tmp_path / "reference")]) == 0
    assert _computed(capsys.readouterr().out) == N
    resumed, reference = read_table(out / "embeddings.parquet"), read_table(tmp_path / "reference/embeddings.parquet")
    pd.testing.assert_frame_equal(resumed[0], reference[0])
    np.testing.assert_allclose(resumed[1], reference[1], rtol=1e-5, atol=1e-5)
    assert resumed[2]["encoder_fingerprint"] == reference[2]["encoder_fingerprint"]
