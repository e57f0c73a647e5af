"""The robustness protocol in a site job: the clean-trained head on clean embeddings is the linear protocol's test
result, the corrupted embeddings come back from the cache on a re-run, and the runs hold the figures."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from medprobe.cli.main import main

ARTEFACTS = ["bias_field", "rician_noise"]


@pytest.fixture
def robustness_job(volume_dataset, write_spec) -> Path:
    manifest = volume_dataset(n=24)
    return write_spec(manifest, protocols={"linear": {"bootstrap": 100}, "knn": {"k": [3], "primary_k": 3},
                                           "robustness": {"artefacts": ARTEFACTS, "severities": [1, 4],
                                                          "bootstrap": 100}})


def test_clean_head_reproduces_the_linear_protocol_and_corruptions_are_scored(robustness_job: Path, tmp_path: Path,
                                                                             capsys) -> None:
    assert main(["run", str(robustness_job), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "robustness: 2 artefact(s) × 2 severities" in out
    folder = tmp_path / "work" / "evaluation" / "handcrafted" / "lesion"
    table = pd.read_csv(folder / "robustness.csv")
    linear = json.loads((folder / "metrics.json").read_text())["protocols"]["linear"]["metrics"]
    clean = table[table["severity"] == 0].set_index("metric")["value"]
    for metric, value in clean.items():
        assert value == linear[metric], metric  # exactly: the head is the model the protocol tested
    assert set(zip(table["artefact"], table["severity"], strict=True)) == {
        ("none", 0), *((a, s) for a in ARTEFACTS for s in (1, 4))}
    bias = table[(table["artefact"] == "bias_field") & (table["metric"] == "auroc")].set_index("severity")
    assert bias.loc[4, "cosine_median"] < bias.loc[1, "cosine_median"] <= 1.0  # a stronger field moves further
    assert (folder / "plots" / "robustness_curves.png").is_file()

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("medprobe/unit").experiment_id
    run = client.search_runs([experiment], "tags.`medprobe.protocol` = 'robustness'")[0]
    assert run.info.status == "FINISHED"
    metrics = run.data.metrics
    assert "robustness/bias_field/s4/auroc" in metrics and "robustness/bias_field/s4/cosine_p05" in metrics
    assert "robustness/summary_drop" not in metrics or metrics["robustness/summary_drop"] == metrics[
        "robustness/summary_drop"]
    assert run.data.params["artefacts"] == "bias_field,rician_noise"

    results = json.loads((tmp_path / "work" / "results.json").read_text())
    outcomes = {o["protocol"]: o for o in results["outcomes"]}
    robustness = outcomes["robustness"]
    assert robustness["mlflow_run_id"] == run.info.run_id  # the MLflow id beside the bundle's
    assert run.data.tags["medprobe.run_uid"] == robustness["run_id"]
    headline = run.data.params["headline_metric"]
    summary = int(run.data.params["summary_severity"])
    for artefact in ARTEFACTS:
        key = f"{artefact}/s{summary}/{headline}"
        assert robustness["metrics"][key] == metrics[f"robustness/{key}"]
        assert robustness["metrics"][f"{key}_drop"] == metrics[f"robustness/{key}_drop"]
    assert robustness["metrics"][f"none/s0/{headline}"] == linear[headline]
    for outcome in results["outcomes"]:  # every result can be opened in MLflow from results.json
        assert client.get_run(outcome["mlflow_run_id"]).data.tags["medprobe.run_uid"] == outcome["run_id"]


@pytest.mark.slow
def test_a_rerun_takes_the_corrupted_embeddings_from_the_cache(robustness_job: Path, capsys) -> None:
    assert main(["run", str(robustness_job), "--no-progress"]) == 0
    first = capsys.readouterr().out
    assert main(["run", str(robustness_job), "--no-progress"]) == 0
    second = capsys.readouterr().out
    before = next(line for line in first.splitlines() if "robustness: 2 artefact" in line)
    after = next(line for line in second.splitlines() if "robustness: 2 artefact" in line)
    images = int(before.split(" on ")[1].split()[0])
    assert f"({4 * images} embedded, 0 from cache)" in before  # 2 artefacts × 2 severities
    assert f"(0 embedded, {4 * images} from cache)" in after


def test_without_a_test_split_robustness_says_why_it_did_not_run(volume_dataset, write_spec, capsys) -> None:
    spec = write_spec(volume_dataset(n=16, split=False),
                      protocols={"linear": {"bootstrap": 0}, "robustness": {"artefacts": ["gamma"]}})
    assert main(["run", str(spec), "--no-progress"]) == 0
    assert "robustness not run (robustness needs test rows" in capsys.readouterr().out


def test_spec_refuses_artefacts_of_another_modality_and_robustness_without_linear(volume_dataset,
                                                                                 write_spec) -> None:
    manifest = volume_dataset(n=8)
    bad = write_spec(manifest, name="bad.yaml", protocols={"linear": {}, "robustness": {"artefacts": ["jpeg"]}})
    assert main(["run", str(bad), "--dry-run"]) == 2
    alone = write_spec(manifest, name="alone.yaml", protocols={"knn": {}, "robustness": {}})
    assert main(["run", str(alone), "--dry-run"]) == 2
