import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from medprobe.cli.main import main
from medprobe.embed.table import write_table


def _table(path: Path, n_subjects: int = 40, pseudonyms: bool = False) -> Path:
    rng = np.random.default_rng(0)
    y = np.repeat(rng.choice(["a", "b"], size=n_subjects), 2)
    X = rng.normal(size=(len(y), 8)) + 2.0 * (y == "b")[:, None]
    ids = [f"sub-{i:016x}" if pseudonyms else f"MRN{i:05d}" for i in range(n_subjects)]
    frame = pd.DataFrame({"sample_id": [f"x{i}" for i in range(len(y))], "subject_id": np.repeat(ids, 2),
                          "site": "A", "label": y, "embedding": list(X.astype(np.float32))})
    write_table(frame, path, {"model": "dinov2_vits14"})  # what `medprobe embed` records of the architecture
    return path


FAST = ["--protocols", "knn,fewshot", "--bootstrap", "50"]


def test_writes_metrics_predictions_and_plots(tmp_path: Path) -> None:
    table = _table(tmp_path / "t.parquet")
    out = tmp_path / "out"
    assert main(["evaluate", "--embeddings", str(table), "--target", "label", "--out", str(out), *FAST]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    knn = summary["protocols"]["knn"]
    assert {"accuracy", "auroc", "ece"} <= set(knn["metrics"])
    assert knn["ci95"]["auroc"][0] <= knn["metrics"]["auroc"] <= knn["ci95"]["auroc"][1]
    predictions = pd.read_parquet(out / "predictions" / "knn.parquet")
    assert predictions["subject_id"].str.match(r"^sub-[0-9a-f]{16}$").all()
    assert not predictions["subject_id"].str.contains("MRN").any()
    assert {"sample_id", "y_true", "y_pred", "proba_a", "proba_b"} <= set(predictions.columns)
    for name in ("knn_roc.png", "knn_confusion.png", "knn_reliability.png", "fewshot_shots.png"):
        assert (out / "plots" / name).stat().st_size > 0

    # Tracked by default, with the site job's run layout, and without the table's subject ids.
    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("medprobe/evaluate").experiment_id
    runs = client.search_runs([experiment])
    protocols = {r.data.tags.get("medprobe.protocol"): r for r in runs
                 if r.data.tags["medprobe.run_kind"] == "protocol"}
    assert set(protocols) == {"knn", "fewshot"} and len(runs) == 3
    assert protocols["knn"].data.tags["medprobe.site"] == "A" and "test/auroc_ci_low" in protocols["knn"].data.metrics
    assert {r.data.tags["medprobe.architecture"] for r in runs} == {"dinov2_vits14"}  # as a site job tags its runs
    assert {a.path for a in client.list_artifacts(protocols["knn"].info.run_id, "plots")} >= {"plots/knn_roc.png"}
    assert b"MRN" not in (out / "mlflow.db").read_bytes()


def test_existing_pseudonyms_are_kept_and_seeds_repeat(tmp_path: Path) -> None:
    table = _table(tmp_path / "t.parquet", pseudonyms=True)
    out = tmp_path / "out"
    assert main(["evaluate", "--embeddings", str(table), "--target", "label", "--out", str(out), "--seeds", "2",
                 "--no-track", *FAST]) == 0
    predictions = pd.read_parquet(out / "predictions" / "knn.parquet")
    assert predictions["subject_id"].iloc[0].startswith("sub-0000")
    summary = json.loads((out / "metrics.json").read_text())
    assert "accuracy_seed_std" in summary["protocols"]["fewshot"]["metrics"]


@pytest.mark.parametrize("target", ["missing_column"])
def test_missing_column_and_bad_file_exit_2(tmp_path: Path, target: str) -> None:
    table = _table(tmp_path / "t.parquet")
    assert main(["evaluate", "--embeddings", str(table), "--target", target, "--out", str(tmp_path / "o")]) == 2
    (tmp_path / "bad.parquet").write_text("not parquet")
    assert main(["evaluate", "--embeddings", str(tmp_path / "bad.parquet"), "--target", "label"]) == 2


def test_protocol_that_cannot_run_exits_3(tmp_path: Path) -> None:
    table = _table(tmp_path / "t.parquet")
    out = tmp_path / "out"
    code = main(["evaluate", "--embeddings", str(table), "--target", "label", "--out", str(out),
                 "--protocols", "knn,attentive", "--bootstrap", "0"])
    assert code == 3
    summary = json.loads((out / "metrics.json").read_text())
    assert "attentive" in summary["failed"] and "knn" in summary["protocols"]


@pytest.mark.slow
def test_attentive_reads_the_tokens_medprobe_embed_kept(volume_dataset, tmp_path: Path, capsys) -> None:
    manifest = volume_dataset(n=16, split=False)
    embedded = tmp_path / "emb"
    assert main(["embed", "--model", "dinov2_vits14", "--option", "input_size=28", "--manifest", str(manifest),
                 "--out", str(embedded), "--modality", "mri", "--workers", "0", "--no-progress", "--site", "s",
                 "--precision", "fp32", "--tokens"]) == 0
    assert "patch tokens: 12 x 384 per sample" in capsys.readouterr().out
    out = tmp_path / "out"
    assert main(["evaluate", "--embeddings", str(embedded / "embeddings.parquet"), "--target", "label",
                 "--out", str(out), "--protocols", "attentive,knn", "--bootstrap", "0", "--no-track"]) == 0
    summary = json.loads((out / "metrics.json").read_text())
    attentive = summary["protocols"]["attentive"]
    assert "accuracy" in attentive["metrics"] and attentive["params"]["optimizer"] == "adamw"


@pytest.mark.parametrize("seed", ["-5", str(2**32)])
def test_a_seed_outside_numpys_range_is_a_usage_error(tmp_path: Path, seed: str, capsys) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["evaluate", "--embeddings", str(tmp_path / "t.parquet"), "--target", "y", "--seed", seed])
    assert caught.value.code == 2 and "--seed" in capsys.readouterr().err
