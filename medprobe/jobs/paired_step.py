"""The paired step of a site job: once every model is evaluated, compare the models on the same test subjects
(`medprobe.evaluation.paired`), write `evaluation/paired.csv` and log one run per compared pair and protocol.

A paired run is named `site · model vs baseline · task · protocol`, tagged `medprobe.run_kind` = `paired`,
`medprobe.model`, `medprobe.baseline`, the site, task and protocol, and holds `paired/<metric>/<column>` for the
columns of `PAIRED_COLUMNS` that are numbers, so the MLflow UI lines sites up and `medprobe compare` reads them back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from medprobe.evaluation import EvaluationResult
from medprobe.evaluation.paired import PAIRED_COLUMNS, PairedComparison, compare_evaluations, comparison_pairs
from medprobe.jobs.recording import JobRecorder
from medprobe.spec import PipelineSpec
from medprobe.tracking import naming
from medprobe.transfer import FeatureSpace

#: The numeric columns of a paired row logged as metrics.
LOGGED_COLUMNS = ("n_subjects", "n_samples", "model_value", "baseline_value", "difference", "ci_low", "ci_high",
                  "p_value", "p_holm", "delong_z", "delong_p", "delong_p_holm")
HANDCRAFTED = "handcrafted"


def default_baselines(spaces: list[FeatureSpace]) -> list[str]:
    """The handcrafted baseline, then every random-init control (so a random-init network is compared with the
    handcrafted features as the model, not as the baseline)."""
    handcrafted = [s.model for s in spaces if s.architecture == HANDCRAFTED]
    return [*handcrafted, *(s.model for s in spaces if not s.pretrained and s.model not in handcrafted)]


def paired_step(spec: PipelineSpec, spaces: list[FeatureSpace], evaluations: dict[str, dict[str, EvaluationResult]],
                recorder: JobRecorder, say: Callable[[str], None]) -> PairedComparison:
    """`evaluations`: task name → model key → its evaluation. Returns the comparison (empty when nothing pairs)."""
    options = spec.analysis.paired
    path = spec.workdir / "evaluation" / "paired.csv"
    path.unlink(missing_ok=True)
    models = [s.model for s in spaces]
    baselines = options.baselines if options.baselines is not None else default_baselines(spaces)
    pairs = comparison_pairs(models, baselines, every_pair=options.pairs == "all")
    if options.bootstrap < 1 or not pairs:
        return PairedComparison(pd.DataFrame(columns=list(PAIRED_COLUMNS)))
    comparison = compare_evaluations(evaluations, pairs, options.bootstrap, spec.seed)
    if comparison.table.empty:
        return comparison
    path.parent.mkdir(parents=True, exist_ok=True)
    comparison.table.to_csv(path, index=False)
    _log(spec, spaces, comparison.table, recorder, path)
    say(f"  paired comparisons: {len(comparison.table)} rows in {path}")
    return comparison


def _log(spec: PipelineSpec, spaces: list[FeatureSpace], table: pd.DataFrame, recorder: JobRecorder,
         csv: Path) -> None:
    by_model = {s.model: s for s in spaces}
    for (task, protocol, model, baseline), rows in table.groupby(["task", "protocol", "model", "baseline"],
                                                                 sort=False):
        space = by_model[model]
        tags = {
            naming.SITE: spec.site, naming.TASK: task, naming.PROTOCOL: protocol, naming.PIPELINE: spec.name,
            **naming.model_tags(model, space.architecture, space.fingerprint, space.weights, space.pretrained),
            naming.BASELINE: baseline, naming.RUN_KIND: "paired",
        }
        run = recorder.runs.start_run(naming.paired_run_name(spec.site, model, baseline, task, protocol), tags)
        metrics = {f"paired/{row['metric']}/{column}": float(row[column]) for _, row in rows.iterrows()
                   for column in LOGGED_COLUMNS if _finite(row[column])}
        recorder.runs.log(run, metrics=metrics)
        recorder.runs.log_file(run, csv)
        recorder.runs.finish(run)


def _finite(value: object) -> bool:
    return isinstance(value, int | float | np.number) and math.isfinite(float(value))
