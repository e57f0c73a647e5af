"""Every run medprobe writes has a registered kind with its required tags and parent kind, and finishes by its
kind's failure rule; the checks refuse a writer that breaks them."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from medprobe.tracking import naming
from medprobe.tracking.recorder import RunRecorder
from medprobe.tracking.run_kinds import DIAGNOSTICS, JOB, PROTOCOL, RUN_KINDS, kind_filter

RESULT = {naming.SITE: "a", naming.MODEL: "m", naming.TASK: "t", naming.TASK_TYPE: "classification"}


def test_kinds_are_checked_and_failures_follow_the_rule(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with RunRecorder(uri, "medprobe/kinds") as runs:
        with pytest.raises(ValueError, match="needs the tag"):
            runs.start_run(PROTOCOL, "no protocol tag", RESULT)
        with pytest.raises(ValueError, match="unknown run kind"):
            runs.start_run("jobb", "typo", RESULT)
        scored_job = runs.start_run(JOB, "a · m · t", RESULT)
        with pytest.raises(ValueError, match="cannot nest"):
            runs.start_run(DIAGNOSTICS, "d", {naming.SITE: "a", naming.PIPELINE: "p"}, parent=scored_job)
        scored = runs.start_run(PROTOCOL, "a · m · t · linear", {**RESULT, naming.PROTOCOL: "linear"}, scored_job)
        runs.log(scored, metrics={"data/n_test": 10, "test/auroc": 0.8})
        unscored = runs.start_run(PROTOCOL, "a · m · t · knn", {**RESULT, naming.PROTOCOL: "knn"}, scored_job)
        runs.log(unscored, metrics={"data/n_test": 10})  # counts only: the protocol scored nothing
        for run in (scored, unscored, scored_job):
            runs.finish(run)
        empty_job = runs.start_run(JOB, "a · m · u", {**RESULT, naming.TASK: "u"})
        runs.finish(empty_job)
        ids = {run: runs.server_run_id(run) for run in (scored, unscored, scored_job, empty_job)}

    client = MlflowClient(uri)
    status = {run: client.get_run(server_id).info.status for run, server_id in ids.items()}
    assert status == {scored: "FINISHED", unscored: "FAILED", scored_job: "FINISHED", empty_job: "FAILED"}
    experiment = client.get_experiment_by_name("medprobe/kinds").experiment_id
    protocol_runs = client.search_runs([experiment], kind_filter(PROTOCOL))
    assert {run.info.run_id for run in protocol_runs} == {ids[scored], ids[unscored]}
    for run in client.search_runs([experiment]):
        kind = RUN_KINDS[run.data.tags[naming.RUN_KIND]]
        assert all(run.data.tags.get(tag) for tag in kind.required_tags)
