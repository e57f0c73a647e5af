"""`medprobe run --dry-run` counts the runs the job then creates: few-shot does not apply to regression, and the
paired and diagnostics runs count too."""

from __future__ import annotations

import re
from pathlib import Path

from mlflow.tracking import MlflowClient

from medprobe.cli.main import main


def test_the_plans_run_count_is_the_runs_the_job_creates(volume_dataset, write_spec, tmp_path: Path,
                                                         capsys) -> None:
    manifest = volume_dataset(n=16)
    spec = write_spec(
        manifest,
        models=[{"name": "handcrafted"}, {"name": "handcrafted", "alias": "handcrafted-b"}],
        tasks=[{"name": "lesion", "target": "label"}, {"name": "age", "target": "age", "type": "regression"}],
        protocols={"linear": {"bootstrap": 0}, "knn": {"k": [3], "bootstrap": 0},
                   "fewshot": {"shots": [1, 2], "episodes": 5, "bootstrap": 0}},
        analysis={"paired": {"bootstrap": 20}},
    )
    assert main(["run", str(spec), "--dry-run"]) == 0
    plan = capsys.readouterr().out
    planned = re.search(r"^runs +(\d+) run\(s\): (.*)$", plan, re.MULTILINE)
    assert planned is not None, plan
    # 2 models x 2 tasks: 4 job runs, 2 x (3 + 2) protocol runs (no few-shot for regression), each model against
    # the other handcrafted baseline (2 pairs) x 2 tasks x (linear, knn) paired runs, 1 diagnostics run
    assert planned.group(2).startswith("4 job, 10 protocol, 0 robustness, 8 paired, 1 diagnostics")

    assert main(["run", str(spec), "--no-progress"]) == 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("medprobe/unit")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    kinds: dict[str, int] = {}
    for run in runs:
        kind = run.data.tags["medprobe.run_kind"]
        kinds[kind] = kinds.get(kind, 0) + 1
    assert int(planned.group(1)) == len(runs) == 23, kinds
    assert kinds == {"job": 4, "protocol": 10, "paired": 8, "diagnostics": 1}
