"""No model weights leave a site: the recorder uploads probe heads, tables and plots, and refuses checkpoints by
content (a PyTorch zip or pickle, a safetensors file of other tensors than a probe head's) whatever their names,
leaving that one file out while the run goes on."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient
from safetensors.numpy import save_file

from medprobe.tracking import naming
from medprobe.tracking.recorder import RunRecorder
from medprobe.tracking.run_kinds import JOB
from medprobe.tracking.weights_guard import weights_problem
from medprobe.transfer.head_files import write_head
from medprobe.transfer.heads import ProbeHead


def _files(tmp_path: Path) -> dict[str, Path]:
    folder = tmp_path / "files"
    folder.mkdir()
    files = {"table.csv": folder / "table.csv", "notes.json": folder / "notes.json"}
    files["table.csv"].write_text("metric,value\nauroc,0.8\n", encoding="utf-8")
    files["notes.json"].write_text('{"n": 3}', encoding="utf-8")
    torch.save({"conv1.weight": torch.ones(2, 2)}, folder / "results.csv")  # a checkpoint under a table's name
    torch.save({"w": torch.ones(2)}, folder / "old.pt", _use_new_zipfile_serialization=False)
    save_file({"blocks.0.attn.qkv.weight": np.ones((3, 3), np.float32)}, str(folder / "encoder.safetensors"))
    files |= {"results.csv (torch)": folder / "results.csv", "old.pt": folder / "old.pt",
              "encoder.safetensors": folder / "encoder.safetensors"}
    return files


def test_checkpoints_are_recognised_by_content_and_heads_are_not(tmp_path: Path) -> None:
    files = _files(tmp_path)
    head = ProbeHead("classification", [0, 1], np.zeros(4, np.float32), np.ones(4, np.float32),
                     np.ones((1, 4), np.float32), np.zeros(1, np.float32), "a", "m", "t", "y", "m-0", "p",
                     {"C": 1.0}, 10)
    head_files = write_head(head, tmp_path / "head")
    assert [weights_problem(p) for p in head_files] == [None, None]
    assert weights_problem(files["table.csv"]) is None and weights_problem(files["notes.json"]) is None
    assert weights_problem(files["results.csv (torch)"]) == "a PyTorch checkpoint"
    assert "pickled" in str(weights_problem(files["old.pt"]))
    assert weights_problem(files["encoder.safetensors"]) == "a safetensors file of 1 tensors, not a probe head's"
    png = tmp_path / "plot.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert weights_problem(png) is None


def test_the_recorder_leaves_weights_out_and_logs_the_rest(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    files = _files(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tags = {naming.SITE: "a", naming.MODEL: "m", naming.TASK: "t", naming.TASK_TYPE: "classification"}
    with caplog.at_level(logging.WARNING, logger="medprobe.tracking"), RunRecorder(uri, "medprobe/w") as runs:
        run = runs.start_run(JOB, "a · m · t", tags)
        for path in files.values():
            runs.log_file(run, path)
        runs.finish(run)
        server_id = runs.server_run_id(run)
    uploaded = {a.path for a in MlflowClient(uri).list_artifacts(server_id)}
    assert uploaded == {"table.csv", "notes.json"}
    assert sum("model weights never leave the site" in r.getMessage() for r in caplog.records) == 3

