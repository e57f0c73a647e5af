"""A small offline results bundle, as a site job writes one, and reading back what a sync delivered."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from mlflow.tracking import MlflowClient

from medprobe.tracking import naming
from medprobe.tracking.bundle import ResultsBundle

EXPERIMENT = "medprobe/unit"


def write_bundle(parent: Path) -> ResultsBundle:
    """A job run with a spec artifact and three finished protocol runs, each with a metric, a parameter and a note:
    every kind of file a bundle holds (run records, artifacts, summary, metadata)."""
    bundle = ResultsBundle.new(parent)
    experiment = bundle.experiment_id(EXPERIMENT)
    job = bundle.start_run(experiment, "a · m · t", {naming.SITE: "a", naming.RUN_KIND: "job"})
    bundle.log_json(job, {"spec": "redacted"}, "spec.json")
    for index, protocol in enumerate(("linear", "knn", "fewshot")):
        child = bundle.start_run(experiment, f"a · m · t · {protocol}",
                                 {naming.SITE: "a", naming.PROTOCOL: protocol, naming.RUN_KIND: "protocol"}, job)
        bundle.log(child, metrics={"test/accuracy": 0.5 + index / 10}, params={"k": index})
        bundle.log_text(child, "note\n" * 20, "notes.txt")
        bundle.finish(child)
    bundle.finish(job)
    return bundle


def runs_per_uid(uri: str) -> Counter[str]:
    """How many MLflow runs carry each `medprobe.run_uid` (deleted runs included)."""
    from mlflow.entities import ViewType

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        return Counter()
    runs = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=1000)
    return Counter(run.data.tags[naming.RUN_UID] for run in runs)
