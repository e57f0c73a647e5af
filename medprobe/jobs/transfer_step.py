"""The transfer step of a site job: score the probe heads other sites published on this site's embeddings.

For every task it fetches, from the job's experiment on the tracking store, the newest head each other site
published for the same task and the same encoder fingerprint (`medprobe.transfer.published_heads`), scores it on
this site's rows (`medprobe.transfer.rows`: the test split, or every labelled row without a split) and logs one
transfer run per (train site → this site).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medprobe.errors import ProbeError
from medprobe.evaluation import TaskRows
from medprobe.jobs.recording import JobRecorder
from medprobe.metrics.catalogue import SHOWN
from medprobe.metrics.display import metric_with_interval, with_flags
from medprobe.pipeline_spec.context import JobContext
from medprobe.pipeline_spec.pipeline import TaskSpec
from medprobe.probes.options import LinearOptions
from medprobe.tracking.failures import is_connection_failure
from medprobe.transfer import FeatureSpace, PublishedHead, evaluate_head, published_heads
from medprobe.transfer.rows import scored_rows


@dataclass
class TransferOutcome:
    train_site: str
    model: str
    task: str
    metrics: dict[str, float]
    notes: list[str]
    run_id: str | None = None
    n_test_subjects: int | None = None
    flags: list[str] = field(default_factory=list)  # `medprobe.evaluation.plausibility` flags


def offline_message(reason: str | None) -> str:
    return (f"transfer: offline ({reason}); other sites' heads not fetched, run `medprobe transfer SPEC` once the "
            "tracking server is reachable")


def transfer_step(context: JobContext, tasks: list[TaskSpec], linear: LinearOptions | None, space: FeatureSpace,
                  frame: pd.DataFrame, X: np.ndarray, recorder: JobRecorder,
                  say: Callable[[str], None]) -> tuple[list[TransferOutcome], list[str]]:
    """Score other sites' heads for every one of `tasks` on one embedding table (`frame`, its vectors `X`), with the
    bootstrap of the site's `linear` protocol options.

    Returns the outcomes and the notes on heads that were not scored. Without a tracking store that answers (the
    job is offline, or the server stops answering), the step ends with a one-line message and the outcomes so far.
    """
    outcomes: list[TransferOutcome] = []
    skipped: list[str] = []
    options = linear or LinearOptions()
    for task in tasks:
        server = recorder.server
        if server is None:
            say(f"  {offline_message(recorder.offline_reason)}")
            break
        try:
            heads, notes = published_heads(server, context.experiment, space, task.name, task.type, context.site)
        except Exception as exc:
            if not is_connection_failure(exc):
                raise
            say(f"  {offline_message(f'tracking server stopped answering ({type(exc).__name__})')}")
            break
        if heads:
            scored, more = _score_heads(context, options, space, frame, X, task, heads, recorder, say)
            outcomes += scored
            notes += more
        for note in notes:
            say(f"  transfer: {note}")
        skipped += notes
    return outcomes, skipped


def _score_heads(context: JobContext, options: LinearOptions, space: FeatureSpace, frame: pd.DataFrame,
                 X: np.ndarray, task: TaskSpec, heads: list[PublishedHead], recorder: JobRecorder,
                 say: Callable[[str], None]) -> tuple[list[TransferOutcome], list[str]]:
    """One transfer run per head that can be scored; notes for those that cannot."""
    rows = TaskRows.of(frame, task.target, task.type)
    try:
        inputs, input_notes = rows.prepare(X)
    except ProbeError as exc:
        return [], [f"{space.model}/{task.name}: no head scored: {exc}"]
    scored = inputs.rows[scored_rows(inputs)]
    digest = rows.digest(scored)
    outcomes, skipped = [], []
    for source in heads:
        where = f"{source.head.site} → {context.site} {space.model}/{task.name}"
        try:
            result = evaluate_head(source.head, inputs, space, options, context.seed)
        except ProbeError as exc:
            skipped.append(f"{where}: {exc}")
            continue
        notes = [*rows.notes, *input_notes]
        run_id = recorder.log_transfer(space, task, digest, source, result, notes, rows.sample_ids)
        outcomes.append(TransferOutcome(source.head.site, space.model, task.name, result.metrics,
                                        notes + result.notes, run_id, result.n_test_subjects, result.flags))
        name = next((k for k in SHOWN if k in result.metrics), None)
        headline = f"{name} {metric_with_interval(result.metrics, name)}" if name else "no metric"
        say(with_flags(f"  transfer {where}: {headline} on {result.n_test} row(s)", result.flags))
    return outcomes, skipped
