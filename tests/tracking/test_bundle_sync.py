from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from medprobe.tracking import TrackingStore, naming
from medprobe.tracking.bundle import ResultsBundle, open_bundle
from medprobe.tracking.sync import sync_bundle
from medprobe.tracking.tee import TeeStore


def _log_job(store: TrackingStore | TeeStore | ResultsBundle, stop_after: int | None = None,
             on_stop=None) -> list[str]:
    """A parent run and three protocol runs, like a site job; `on_stop` runs after `stop_after` children."""
    experiment = store.experiment_id("medprobe/unit")
    parent = store.start_run(experiment, "a · m · t", {naming.SITE: "a", naming.RUN_KIND: "job"})
    store.log_json(parent, {"spec": "redacted"}, "spec.json")
    children = []
    for index, protocol in enumerate(("linear", "knn", "fewshot")):
        if stop_after is not None and index == stop_after and on_stop:
            on_stop()
        child = store.start_run(experiment, f"a · m · t · {protocol}",
                                {naming.SITE: "a", naming.PROTOCOL: protocol, naming.RUN_KIND: "protocol"}, parent)
        store.log(child, metrics={"test/accuracy": 0.5 + index / 10}, params={"k": index})
        store.log_text(child, "note\n", "notes.txt")
        store.finish(child)
        children.append(child)
    store.finish(parent)
    return children


def _runs(uri: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("medprobe/unit")
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


def test_offline_bundle_is_reviewable_and_syncs_once(tmp_path: Path) -> None:
    bundle = ResultsBundle.new(tmp_path / "bundles")
    _log_job(bundle)
    summary = (bundle.root / "summary.csv").read_text()
    assert summary.count("\n") == 4 and "test/accuracy" in summary
    uri = f"sqlite:///{tmp_path / 'central.db'}"
    first = sync_bundle(bundle.root, uri)
    assert (first.created, first.skipped) == (4, 0)
    runs = _runs(uri)
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    children = [r for r in runs if r.data.tags.get(naming.RUN_KIND) == "protocol"]
    assert {r.data.tags["mlflow.parentRunId"] for r in children} == {
        r.info.run_id for r in runs if r.data.tags.get(naming.RUN_KIND) == "job"}
    assert MlflowClient(uri).list_artifacts(children[0].info.run_id)[0].path == "notes.txt"
    second = sync_bundle(bundle.root, uri)
    assert (second.created, second.completed, second.skipped) == (0, 0, 4)
    assert len(_runs(uri)) == 4
    assert open_bundle(bundle.root).root == bundle.root


@pytest.mark.slow
def test_server_stopping_mid_job_loses_nothing_and_sync_completes_it(tmp_path: Path, mlflow_server) -> None:
    bundle = ResultsBundle.new(tmp_path / "bundles")
    tee = TeeStore(bundle, TrackingStore(mlflow_server.uri))
    _log_job(tee, stop_after=2, on_stop=mlflow_server.stop)
    assert tee.online is None and "stopped answering" in (tee.offline_reason or "")
    assert len(list(bundle.runs())) == 4

    mlflow_server.start()  # the same backend store, back online
    before = _runs(mlflow_server.uri)
    assert 1 <= len(before) <= 3
    report = sync_bundle(bundle.root, mlflow_server.uri)
    assert report.created + report.completed + report.skipped == 4
    runs = _runs(mlflow_server.uri)
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    assert sorted(r.data.metrics["test/accuracy"] for r in runs if "test/accuracy" in r.data.metrics) == [
        0.5, 0.6, 0.7]
    again = sync_bundle(bundle.root, mlflow_server.uri)
    assert (again.created, again.completed) == (0, 0)
