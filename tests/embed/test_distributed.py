"""torchrun sharding on a CPU (gloo): two ranks fill one cache, rank 0 writes the same table one process would."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medprobe.cli.main import main
from medprobe.embed import read_table


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists(),
                    reason="torchrun not installed")
def test_two_ranks_share_the_work_and_rank0_writes_the_table(volume_dataset, tmp_path: Path, capsys) -> None:
    manifest = volume_dataset(n=10)
    (manifest.parent / "vol004.nii.gz").write_text("not a volume")
    args = ["embed", "--model", "handcrafted", "--manifest", str(manifest), "--modality", "mri", "--site", "s1",
            "--precision", "fp32", "--device", "cpu", "--workers", "0", "--no-progress"]
    env = {**os.environ, "MEDPROBE_SUBJECT_SALT": "pepper-and-salt-2024", "MEDPROBE_SHARD_SAMPLES": "2"}
    torchrun = shutil.which("torchrun") or str(Path(sys.executable).with_name("torchrun"))
    done = subprocess.run([torchrun, "--standalone", "--nproc_per_node", "2", "-m", "medprobe.cli.main", *args,
                           "--out", str(tmp_path / "ddp")], env=env, capture_output=True, text=True, timeout=300)
    assert "embedded 9: 9 computed, 0 cached, 1 skipped" in done.stdout, done.stderr[-3000:]
    assert done.stdout.count("embedded 9") == 1  # only rank 0 reports
    shards = list((tmp_path / "ddp/cache").glob("shard-*.parquet"))
    assert len(shards) >= 4  # both ranks wrote (5 samples each, at most 2 per shard)
    skipped = (tmp_path / "ddp/local-only/skipped-files.csv").read_text().splitlines()[1:]
    assert len(skipped) == 1 and "vol004" in skipped[0]

    os.environ["MEDPROBE_SUBJECT_SALT"] = "pepper-and-salt-2024"
    try:
        assert main([*args, "--out", str(tmp_path / "single")]) == 3
    finally:
        del os.environ["MEDPROBE_SUBJECT_SALT"]
    capsys.readouterr()
    ddp, single = read_table(tmp_path / "ddp/embeddings.parquet"), read_table(tmp_path / "single/embeddings.parquet")
    pd.testing.assert_frame_equal(ddp[0], single[0])
    np.testing.assert_allclose(ddp[1], single[1], rtol=1e-6, atol=1e-6)
