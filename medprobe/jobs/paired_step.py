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
from medprobe.evaluation.options import PairedOptions
from medprobe.evaluation.paired import PAIRED_COLUMNS, PairedComparison, compare_evaluations, comparison_pairs
from medprobe.jobs.recording import JobRecorder
from medprobe.pipeline_spec.context import JobContext
from medprobe.tracking import naming
from medprobe.tracking.run_kinds import PAIRED
from medprobe.transfer import FeatureSpace

#: The numeric columns of a paired row logged as metrics.
LOGGED_COLUMNS = ("n_subjects", "n_samples", "model_value", "baseline_value", "difference", "ci_low", "ci_high",
                  "p_value", "p_holm", "delong_z", "delong_p", "delong_p_holm")
HANDCRAFTED = "handcrafted"


def default_pairs(spaces: list[FeatureSpace]) -> list[tuple[str, str]]:
    """Every model against the handcrafted baseline, and every pretrained model against the random-init control of
    its own architecture (a control of another architecture says nothing about it and would only widen the Holm
    family)."""
    handcrafted = [s.model for s in spaces if s.architecture == HANDCRAFTED]
    pairs = [(s.model, h) for h in handcrafted for s in spaces if s.model != h]
    controls = [s for s in spaces if not s.pretrained and s.architecture != HANDCRAFTED]
    pairs += [(s.model, c.model) for c in controls for s in spaces
              if s.pretrained and s.architecture == c.architecture and s.model != c.model]
    return pairs


def job_pairs(options: PairedOptions, spaces: list[FeatureSpace]) -> list[tuple[str, str]]:
    """The (model, baseline) pairs a job compares: those the spec names (`baselines`, `pairs: all`), else the
    defaults (`default_pairs`). The dry-run plan counts its paired runs with the same rule."""
    if options.pairs == "all" or options.baselines is not None:
        return comparison_pairs([s.model for s in spaces], options.baselines or [], every_pair=options.pairs == "all")
    return default_pairs(spaces)


def paired_step(context: JobContext, options: PairedOptions, spaces: list[FeatureSpace],
                evaluations: dict[str, dict[str, EvaluationResult]], recorder: JobRecorder,
                say: Callable[[str], None]) -> PairedComparison:
    """`evaluations`: task name → model key → its evaluation. Returns the comparison (empty when nothing pairs)."""
    path = context.paths.paired
    path.unlink(missing_ok=True)
    models = [s.model for s in spaces]
    pairs = job_pairs(options, spaces)
    if options.bootstrap < 1 or not pairs:
        if len(models) > 1 and options.bootstrap >= 1:
            say("  paired comparisons: none (no handcrafted model, no random-init control of a model's own "
                "architecture, and no analysis.paired.baselines)")
        return PairedComparison(pd.DataFrame(columns=list(PAIRED_COLUMNS)))
    comparison = compare_evaluations(evaluations, pairs, options.bootstrap, context.seed)
    for note in comparison.notes:
        say(f"  paired: {note}")
    if comparison.table.empty:
        return comparison
    path.parent.mkdir(parents=True, exist_ok=True)
    comparison.table.to_csv(path, index=False)
    _log(context, spaces, comparison, recorder, path)
    say(f"  paired comparisons: {len(comparison.table)} rows in {path}")
    return comparison


def _log(context: JobContext, spaces: list[FeatureSpace], comparison: PairedComparison, recorder: JobRecorder,
         csv: Path) -> None:
    by_model = {s.model: s for s in spaces}
    for (task, protocol, model, baseline), rows in comparison.table.groupby(["task", "protocol", "model", "baseline"],
                                                                            sort=False):
        space = by_model[model]
        tags = {
            naming.SITE: context.site, naming.TASK: task, naming.PROTOCOL: protocol, naming.PIPELINE: context.pipeline,
            **naming.model_tags(model, space.architecture, space.fingerprint, space.weights, space.pretrained),
            naming.BASELINE: baseline,
        }
        name = naming.paired_run_name(context.site, model, baseline, task, protocol)
        run = recorder.runs.start_run(PAIRED, name, tags)
        metrics = {f"paired/{row['metric']}/{column}": float(row[column]) for _, row in rows.iterrows()
                   for column in LOGGED_COLUMNS if _finite(row[column])}
        recorder.runs.log(run, metrics=metrics)
        recorder.runs.log_file(run, csv)
        notes = [n for n in comparison.notes if n.startswith(f"{task}/{protocol} {model} vs {baseline}: ")]
        if notes:
            recorder.runs.log_text(run, "\n".join(notes) + "\n", "notes.txt")
        recorder.runs.finish(run)


def _finite(value: object) -> bool:
    return isinstance(value, int | float | np.number) and math.isfinite(float(value))
