"""`medprobe run`: exit codes, one-line errors, the dry-run plan, and a real job into a real SQLite store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from mlflow.tracking import MlflowClient

from medprobe.cli.main import main


def test_dry_run_prints_the_plan(volume_dataset, write_spec, capsys) -> None:
    spec = write_spec(volume_dataset(n=8))
    assert main(["run", str(spec), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "site       site-x" in out and "8 rows" in out and "protocols  linear, knn" in out
    assert "transfer   publishes its linear probe heads; scores other sites' heads" in out and "test split" in out
    assert "dry run: spec and manifest are valid" in out


def test_invalid_spec_exits_2_with_one_line_naming_the_key(volume_dataset, write_spec) -> None:
    spec = write_spec(volume_dataset(n=4), models=[{"name": "handcrafted", "batchsize": 3}])
    done = subprocess.run([sys.executable, "-m", "medprobe.cli.main", "run", str(spec), "--dry-run"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown key 'models[0].batchsize'" in lines[0]
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"data": {"manifest": "missing.csv", "modality": "mri"}}, "manifest not found"),
        ({"tasks": [{"name": "t", "target": "no_such_column"}]}, "missing column(s) 'no_such_column'"),
        ({"models": [{"name": "dinov2_vits14", "weights": "absent.pth"}]}, "file not found"),
    ],
)
def test_user_errors_exit_2(volume_dataset, write_spec, capsys, overrides: dict, message: str) -> None:
    manifest = volume_dataset(n=4)
    spec = write_spec(manifest, **overrides)
    assert main(["run", str(spec), "--dry-run"]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.slow
def test_a_job_logs_runs_and_skips_bad_inputs(volume_dataset, write_spec, tmp_path: Path, capsys) -> None:
    manifest = volume_dataset(n=14)
    (manifest.parent / "vol004.nii.gz").write_text("corrupt")
    spec = write_spec(manifest, tasks=[{"name": "lesion", "target": "label"},
                                       {"name": "age", "target": "age", "type": "regression"}])
    assert main(["run", str(spec), "--no-progress"]) == 3
    out = capsys.readouterr().out
    assert "completed with 1 skipped input(s)" in out
    quarantine = (tmp_path / "work" / "quarantine.csv").read_text()
    assert "vol004" not in quarantine and "corrupt-data" in quarantine
    local = (tmp_path / "work" / "local-only" / "skipped-files.csv").read_text()
    assert "vol004.nii.gz" in local and "not a readable NIfTI" in local

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("medprobe/unit")
    runs = client.search_runs([experiment.experiment_id])
    protocol_runs = [r for r in runs if r.data.tags.get("medprobe.run_kind") == "protocol"]
    job_runs = [r for r in runs if r.data.tags.get("medprobe.run_kind") == "job"]
    assert len(job_runs) == 2 and len(protocol_runs) == 4
    for run in protocol_runs:
        assert run.data.tags["mlflow.parentRunId"] in {j.info.run_id for j in job_runs}
        assert run.data.tags["medprobe.site"] == "site-x"
        assert run.data.tags["medprobe.model"] == "handcrafted"
        assert run.info.status == "FINISHED"
    lesion_linear = next(r for r in protocol_runs
                         if r.data.tags["medprobe.task"] == "lesion" and r.data.tags["medprobe.protocol"] == "linear")
    assert lesion_linear.data.metrics["test/accuracy"] >= 0.75  # the blob is an easy, learnable signal
    age = next(r for r in protocol_runs if r.data.tags["medprobe.task"] == "age")
    assert "test/mae" in age.data.metrics
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    assert results["skipped_inputs"] == 1 and len(results["outcomes"]) == 4

    # A second run is served from the embedding cache and still logs complete runs.
    assert main(["run", str(spec), "--no-progress"]) == 3
    assert "0 computed, 13 from cache, 1 skipped" in capsys.readouterr().out


def test_compare_needs_a_store_and_an_experiment(tmp_path: Path, capsys) -> None:
    assert main(["compare", "--experiment", "x", "--tracking-uri", f"sqlite:///{tmp_path / 'm.db'}"]) == 2
    assert "experiment 'x' not found" in capsys.readouterr().err


@pytest.mark.slow
def test_attentive_protocol_runs_on_the_tokens_the_job_keeps(volume_dataset, write_spec, tmp_path: Path,
                                                             capsys) -> None:
    """A model with patch tokens gets the attentive probe; one without (handcrafted) is skipped by name."""
    spec = write_spec(volume_dataset(n=12),
                      models=[{"name": "dinov2_vits14", "options": {"input_size": 28}, "precision": "fp32"},
                              {"name": "handcrafted"}],
                      protocols={"knn": {"k": [3], "primary_k": 3, "bootstrap": 0},
                                 "attentive": {"epochs": 5, "queries": 4, "bootstrap": 0, "optimizer": "lars"}})
    assert main(["run", str(spec), "--no-progress"]) == 3
    out = capsys.readouterr().out
    assert "SKIPPED handcrafted/lesion/attentive: no patch tokens" in out
    assert (tmp_path / "work" / "embeddings" / "dinov2_vits14.tokens.npy").is_file()
    results = json.loads((tmp_path / "work" / "results.json").read_text())
    attentive = [o for o in results["outcomes"] if o["protocol"] == "attentive" and o["model"] == "dinov2_vits14"]
    assert attentive and "accuracy" in attentive[0]["metrics"]


def test_dry_run_refuses_a_5_byte_weights_file_naming_the_model(volume_dataset, write_spec, tmp_path: Path,
                                                                 capsys) -> None:
    (tmp_path / "w.pth").write_bytes(b"<html")
    spec = write_spec(volume_dataset(n=4), models=[{"name": "dinov2_vits14", "weights": "w.pth"}])
    assert main(["run", str(spec), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "models[dinov2_vits14].weights: " in err and "5 bytes, too small to be any model's weights" in err


def test_dry_run_says_which_weights_checks_it_did_and_which_it_did_not(volume_dataset, write_spec, tmp_path: Path,
                                                                       capsys) -> None:
    import torch

    torch.save({"w": torch.zeros(512)}, tmp_path / "w.pth")
    spec = write_spec(volume_dataset(n=4), models=[{"name": "dinov2_vits14", "weights": "w.pth"}])
    assert main(["run", str(spec), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "torch zip archive opens, sha256 not checked: the card records none" in out
    assert "not done   image files were not read, only found: add --check-read to read each one" in out


def test_dry_run_check_read_names_the_images_the_job_would_skip(volume_dataset, write_spec, capsys) -> None:
    manifest = volume_dataset(n=6)
    (manifest.parent / "vol002.nii.gz").write_text("corrupt")
    spec = write_spec(manifest)
    assert main(["run", str(spec), "--dry-run", "--check-read"]) == 0
    out = capsys.readouterr().out
    assert "every image read once with the job's reader: 1 would be skipped" in out
    assert "WARNING    unreadable (" in out and "vol002.nii.gz" in out and "add --check-read" not in out


def test_a_task_whose_every_protocol_is_skipped_prints_and_exits_3(volume_dataset, write_spec, tmp_path: Path,
                                                                     capsys) -> None:
    """A split that puts one subject in train and test refuses every protocol of the task: the job says so in its
    table (it used to end in exit 1 while printing it)."""
    manifest = volume_dataset(n=12)
    frame = pd.read_csv(manifest)
    leaked = frame.index[frame["split"] == "train"][0]
    frame.loc[leaked, "subject_id"] = frame.loc[frame.index[frame["split"] == "test"][0], "subject_id"]
    frame.to_csv(manifest, index=False)
    spec = write_spec(manifest, protocols={"linear": {"bootstrap": 0}, "knn": {"k": [3], "bootstrap": 0}})
    assert main(["run", str(spec), "--no-progress"]) == 3
    out = capsys.readouterr().out
    assert "skipped" in out and "result" in out


def test_probes_on_a_missing_gpu_are_refused_before_embedding(volume_dataset, write_spec, tmp_path: Path,
                                                             capsys) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    spec = write_spec(volume_dataset(n=6), probe_device="cuda")
    assert main(["run", str(spec), "--no-progress"]) == 2
    assert "no CUDA GPU is visible" in capsys.readouterr().err
    assert not (tmp_path / "work" / "cache").exists()
