"""`medprobe evaluate` refuses a damaged embedding table (exit 2, naming the file) and still evaluates a table
written without a digest (by another tool), with a note."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from medprobe.cli.main import main
from medprobe.embed.table import write_table

FAST = ["--protocols", "knn", "--bootstrap", "20", "--no-track"]


def _frame(n_subjects: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    y = np.repeat(rng.choice(["a", "b"], size=n_subjects), 2)
    X = rng.normal(size=(len(y), 8)) + 2.0 * (y == "b")[:, None]
    return pd.DataFrame({"sample_id": [f"x{i}" for i in range(len(y))],
                         "subject_id": np.repeat([f"sub-{i:016x}" for i in range(n_subjects)], 2), "site": "A",
                         "label": y, "embedding": list(X.astype(np.float32))})


def test_evaluate_on_a_table_with_a_flipped_byte_exits_2_naming_it(tmp_path: Path, capsys) -> None:
    table = tmp_path / "t.parquet"
    write_table(_frame(), table, {})
    data = bytearray(table.read_bytes())
    vector = np.float32(_frame()["embedding"][7][3]).tobytes()
    assert data.count(vector) == 1
    data[data.find(vector) + 2] ^= 0x10  # one value of one vector, a plausible number still
    table.write_bytes(bytes(data))
    code = main(["evaluate", "--embeddings", str(table), "--target", "label", "--out", str(tmp_path / "out"), *FAST])
    err = capsys.readouterr().err
    assert code == 2
    assert str(table) in err and "damaged embedding table" in err and "medprobe embed" in err
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_evaluate_on_a_table_without_a_digest_runs_with_a_note(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="medprobe.embed")
    frame = _frame()
    table = pa.Table.from_pandas(frame.drop(columns=["embedding"]), preserve_index=False)
    vectors = pa.array([list(v) for v in frame["embedding"]], pa.list_(pa.float32()))
    pq.write_table(table.append_column("embedding", vectors), tmp_path / "own.parquet")
    out = tmp_path / "out"
    assert main(["evaluate", "--embeddings", str(tmp_path / "own.parquet"), "--target", "label", "--out", str(out),
                 *FAST]) == 0
    assert (out / "metrics.json").is_file()
    assert any("without a data digest" in m for m in caplog.messages)
