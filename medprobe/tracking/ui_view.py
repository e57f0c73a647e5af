"""A saved view of an experiment in the MLflow UI: the protocol runs grouped by site, headline metrics as columns.

MLflow's UI keeps a view that someone shared ("Share" in the runs view) as an experiment tag
`mlflow.sharedViewState.<key>` holding the view's JSON, and opens it at `#/experiments/<id>?viewStateShareKey=<key>`.
medprobe writes one such view per experiment (the key `VIEW_KEY`, rewritten by every comparison): the search filter
keeps the protocol runs, the selected columns are the task, model and protocol tags and the headline metrics with
their test subjects, and the runs are grouped by the site tag. The experiment is also marked as a model-development
experiment (`medprobe.tracking.store.MODEL_DEVELOPMENT`), so it opens on its runs.

What MLflow cannot show (a value with its interval in one cell, pooled estimates, paired verdicts) is in
`medprobe compare`'s report; the view says where to find the runs those numbers come from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from medprobe.tracking import naming
from medprobe.tracking.recorder import N_TEST_SUBJECTS
from medprobe.tracking.run_kinds import PROTOCOL, kind_filter
from medprobe.tracking.store import MODEL_DEVELOPMENT, TrackingStore

VIEW_KEY = "medprobe-sites"
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."


def view_state(metrics: Sequence[str]) -> dict[str, object]:
    """The view's JSON: filter, columns (metric keys `test/<metric>`), grouping by site."""
    columns = [f"tags.`{tag}`" for tag in (naming.TASK, naming.MODEL, naming.PROTOCOL)]
    columns += [f"metrics.`{naming.test_metric(metric)}`" for metric in metrics]
    columns.append(f"metrics.`{N_TEST_SUBJECTS}`")
    return {
        "searchFilter": kind_filter(PROTOCOL),
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "selectedColumns": columns,
        "groupBy": {"aggregateFunction": "average", "groupByKeys": [{"mode": "tag", "groupByData": naming.SITE}]},
        "groupsExpanded": {},
    }


def save_sites_view(store: TrackingStore, experiment_id: str, metrics: Sequence[str]) -> str:
    """Write the view into the experiment's tags; returns the UI address to append to the server's URL."""
    store.client.set_experiment_tag(experiment_id, *MODEL_DEVELOPMENT)
    store.client.set_experiment_tag(experiment_id, SHARED_VIEW_PREFIX + VIEW_KEY, json.dumps(view_state(metrics)))
    return f"#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}"
