"""The MLflow UI view medprobe saves: experiments are created as model-development experiments, and the view is an
experiment tag in the format MLflow's UI reads for a shared view (its search facets and UI state keys)."""

from __future__ import annotations

import json
from pathlib import Path

from medprobe.tracking import TrackingStore, naming
from medprobe.tracking.run_kinds import PROTOCOL, kind_filter
from medprobe.tracking.ui_view import SHARED_VIEW_PREFIX, VIEW_KEY, save_sites_view


def test_the_view_filters_protocol_runs_groups_them_by_site_and_shows_the_metrics(tmp_path: Path) -> None:
    store = TrackingStore(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = store.experiment_id("medprobe/view")
    assert store.client.get_experiment(experiment).tags["mlflow.experimentKind"] == "custom_model_development"
    address = save_sites_view(store, experiment, ["auroc", "mae"])
    assert address == f"#/experiments/{experiment}/runs?viewStateShareKey={VIEW_KEY}"
    state = json.loads(store.client.get_experiment(experiment).tags[SHARED_VIEW_PREFIX + VIEW_KEY])
    assert state["searchFilter"] == kind_filter(PROTOCOL)
    assert state["groupBy"]["groupByKeys"] == [{"mode": "tag", "groupByData": naming.SITE}]
    assert {"metrics.`test/auroc`", "metrics.`test/mae`", f"tags.`{naming.MODEL}`"} <= set(state["selectedColumns"])
    # Only keys MLflow's UI takes from a shared view (the rest would be ignored, or break it).
    assert set(state) <= {"searchFilter", "orderByKey", "orderByAsc", "startTime", "lifecycleFilter",
                          "modelVersionFilter", "datasetsFilter", "selectedColumns", "columnOrder", "groupBy",
                          "groupsExpanded", "runsExpanded"}
    save_sites_view(store, experiment, ["auroc"])  # a later comparison rewrites the one view
    state = json.loads(store.client.get_experiment(experiment).tags[SHARED_VIEW_PREFIX + VIEW_KEY])
    assert "metrics.`test/mae`" not in state["selectedColumns"]
