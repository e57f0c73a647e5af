"""One real Flower simulation (Ray backend, one CPU per site): the federated linear head against a pooled probe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from medprobe.embed.table import read_table
from medprobe.federated import FederatedResult, FederatedSettings, simulate

pytestmark = pytest.mark.slow(seconds=30)  # the module's fixture runs a federated simulation


@pytest.fixture(scope="module")
def simulated(site_tables, tmp_path_factory) -> tuple[FederatedResult, str]:
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    settings = FederatedSettings(target="label", rounds=6, tracking_uri=uri, experiment="federated-test")
    return simulate(settings, site_tables), uri


def central_accuracy(site_tables: list[tuple[str, Path]]) -> float:
    frames = [read_table(path) for _, path in site_tables]
    X = np.concatenate([X for _, X, _ in frames])
    y = np.concatenate([f["label"].to_numpy() for f, _, _ in frames])
    train = np.concatenate([(f["split"] == "train").to_numpy() for f, _, _ in frames])
    scaler = StandardScaler().fit(X[train])
    probe = LogisticRegression(max_iter=2000).fit(scaler.transform(X[train]), y[train])
    return probe.score(scaler.transform(X[~train]), y[~train])


def test_federated_linear_head_is_close_to_a_pooled_probe(simulated, site_tables) -> None:
    result, _ = simulated
    assert abs(result.aggregate["accuracy"] - central_accuracy(site_tables)) <= 0.05
    assert set(result.site_metrics) == {"alpha", "beta"}
    assert {"accuracy", "auroc", "balanced_accuracy", "num-examples"} <= set(result.site_metrics["alpha"])
    assert sorted(result.history) == list(range(1, 7))


def test_the_server_wrote_one_run_with_round_and_site_metrics(simulated) -> None:
    result, uri = simulated
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("federated-test")
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [result.run_id]
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["medprobe.protocol"] == "federated_linear"
    assert run.data.tags["medprobe.run_kind"] == "protocol"
    assert run.data.tags["medprobe.site"] == "federated"
    assert run.data.tags["medprobe.task"] == "label"
    history = client.get_metric_history(result.run_id, "round/accuracy")
    assert [m.step for m in history] == list(range(1, 7))
    for site in ("alpha", "beta"):
        assert run.data.metrics[f"test/{site}/accuracy"] == pytest.approx(result.site_metrics[site]["accuracy"])
        assert run.data.metrics[f"test/{site}/num-examples"] == 50
    head = client.download_artifacts(result.run_id, "head/federated_linear.json")
    text = Path(head).read_text()
    saved = json.loads(text)
    assert saved["classes"] == ["0", "1", "2"] and np.asarray(saved["weight"]).shape == (3, 32)
    assert len(saved["standardisation"]["mean"]) == 32 and "alpha-s" not in text
