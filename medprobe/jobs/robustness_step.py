"""The robustness protocol in a site job: re-embed the test split under each artefact and severity, then score the
linear probe's clean-trained head on it (`medprobe.jobs.robustness_scoring`).

Only the test split is corrupted and embedded again, through the job's own cache: a corrupted image's cache key
holds the corruption (artefact, severity, seed, parameters) in the preprocessing description, so a re-run reuses
every corrupted embedding and clean ones never mix with them. The corruption runs in the loader's worker processes
with the rest of the preprocessing. Files: `workdir/robustness/<model>/<artefact>-s<severity>.parquet` (the
corrupted tables), `evaluation/<model>/<task>/robustness.csv` and `plots/robustness_curves.png`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from medprobe.artefacts import Corruption, parse_artefacts
from medprobe.artefacts.library_calls import preload
from medprobe.artefacts.options import RobustnessOptions
from medprobe.embed import EmbedResult, EmbedSettings, embed_manifest
from medprobe.evaluation import TaskRows
from medprobe.jobs.robustness_scoring import CLEAN, RobustnessResult, TestEmbeddings, score_robustness
from medprobe.metrics.plots import robustness_plot
from medprobe.models import Encoder
from medprobe.pipeline_spec.context import JobContext
from medprobe.pipeline_spec.pipeline import DataSpec
from medprobe.preprocess import PreprocessChain
from medprobe.probes import ProtocolResult
from medprobe.split_column import table_split, test_rows
from medprobe.tracking.naming import ROBUSTNESS_PREFIX
from medprobe.transfer import FeatureSpace
from medprobe.transfer.heads import ProbeHead

Corrupted = dict[tuple[str, int], TestEmbeddings]
SUMMARY = "summary_drop"


def embed_corrupted(context: JobContext, options: RobustnessOptions, data: DataSpec, model: str, encoder: Encoder,
                    manifest: pd.DataFrame,
                    settings: EmbedSettings, say: Callable[[str], None]) -> Corrupted | str:
    """The test split's corrupted embeddings per (artefact, severity), or why there are none. `settings` are the
    clean pass's, with the precision it resolved (so no calibration runs again)."""
    held_out = test_rows(table_split(manifest), len(manifest))
    if not held_out.any():
        return ("robustness needs test rows (a `split` column with 'test'): the clean-trained head must not have "
                "seen the images it is scored on")
    test = manifest[held_out].reset_index(drop=True)
    artefacts = parse_artefacts(options.artefacts, data.modality)
    preload()
    folder = context.paths.robustness(model)
    corrupted: Corrupted = {}
    computed = cached = 0
    for artefact in artefacts:
        for severity in options.severities:
            corruption = Corruption(artefact, severity, options.seed, modality=data.modality)
            chain = PreprocessChain(data, encoder.preprocessing, corruption=corruption)
            result = embed_manifest(test, encoder, chain, context.paths.cache, replace(settings, progress=False),
                                    folder / f"{artefact}-s{severity}.parquet")
            computed, cached = computed + result.computed, cached + result.cached
            corrupted[artefact, severity] = _test_embeddings(result)
            if result.skipped:
                say(f"  {model}: {artefact} at severity {severity}: {len(result.skipped)} of {len(test)} corrupted "
                    f"images could not be embedded ({result.skipped[0].reason})")
    say(f"  {model}: robustness: {len(artefacts)} artefact(s) × {len(options.severities)} severities on "
        f"{len(test)} test images ({computed} embedded, {cached} from cache)")
    return corrupted


def robustness_result(context: JobContext, options: RobustnessOptions, space: FeatureSpace, task: str,
                      head: ProbeHead, clean: TestEmbeddings, rows: TaskRows, corrupted: Corrupted,
                      folder: Path) -> tuple[ProtocolResult, RobustnessResult]:
    """The head scored on every corrupted set of the task's test rows (`clean`: the table's clean embeddings, all
    rows; `rows`: the task's), written to `folder`; and the protocol result to log beside it: no `test/` metrics of
    its own (its figures are `run_metrics(outcome)`), the parameters and notes."""
    test = np.flatnonzero(test_rows(rows.split, len(rows)))
    sample_ids = rows.sample_ids[test]
    positions, X = clean.aligned(sample_ids)
    outcome = score_robustness(head, space, TestEmbeddings(sample_ids[positions], X), rows.labels[test][positions],
                               rows.subjects.astype(str)[test][positions], corrupted, rows.task_type,
                               options.bootstrap, context.seed, options.ranking_severity)
    outcome.table.to_csv(folder / "robustness.csv", index=False)
    (folder / "plots").mkdir(parents=True, exist_ok=True)
    (folder / "plots" / "robustness_curves.png").unlink(missing_ok=True)
    robustness_plot(folder / "plots" / "robustness_curves.png", outcome.table, outcome.headline,
                    f"{space.model} · {task}: robustness ({outcome.headline})")
    params = {"artefacts": ",".join(sorted({a for a, _ in corrupted})),
              "severities": ",".join(map(str, options.severities)), "corruption_seed": options.seed,
              "headline_metric": outcome.headline, "summary_severity": options.ranking_severity}
    result = ProtocolResult(metrics={}, predictions=pd.DataFrame(), params=params, n_train=0,
                            n_test=len(positions), notes=outcome.notes)
    return result, outcome


def headline_metrics(outcome: RobustnessResult) -> dict[str, float]:
    """What a job's results show of the robustness protocol: `summary_drop` and, per artefact at the summary
    severity, the headline metric and its drop (`<artefact>/s<severity>/<metric>`, `..._drop`); the clean value as
    `none/s0/<metric>`."""
    table = outcome.table
    rows = table[(table["metric"] == outcome.headline)
                 & ((table["severity"] == outcome.summary_severity) | (table["artefact"] == CLEAN))]
    metrics = {SUMMARY: outcome.summary}
    for row in rows.to_dict("records"):
        key = f"{row['artefact']}/s{row['severity']}/{outcome.headline}"
        metrics[key] = float(row["value"])
        if row["artefact"] != CLEAN:
            metrics[f"{key}_drop"] = float(row["drop"])
    return {k: v for k, v in metrics.items() if np.isfinite(v)}


def run_metrics(outcome: RobustnessResult) -> dict[str, float]:
    """`robustness/<artefact>/s<severity>/<metric>` (+ `_ci_low`, `_ci_high`, `_drop`), `.../cosine_median`,
    `.../cosine_p05`, the clean values as `robustness/none/s0/<metric>`, and `robustness/summary_drop`."""
    metrics: dict[str, float] = {}
    for row in outcome.table.to_dict("records"):
        key = f"{ROBUSTNESS_PREFIX}{row['artefact']}/s{row['severity']}"
        for column, suffix in (("value", ""), ("ci_low", "_ci_low"), ("ci_high", "_ci_high"), ("drop", "_drop")):
            metrics[f"{key}/{row['metric']}{suffix}"] = float(row[column])
        metrics[f"{key}/cosine_median"] = float(row["cosine_median"])
        metrics[f"{key}/cosine_p05"] = float(row["cosine_p05"])
    metrics[f"{ROBUSTNESS_PREFIX}{SUMMARY}"] = outcome.summary
    return {k: v for k, v in metrics.items() if np.isfinite(v)}


def _test_embeddings(result: EmbedResult) -> TestEmbeddings:
    """Possibly none: an artefact that made every image unreadable is scored as such, not left out."""
    if len(result) == 0:
        return TestEmbeddings(np.array([], dtype=object), np.zeros((0, 0), dtype=np.float32))
    return TestEmbeddings(result.frame["sample_id"].astype(str).to_numpy(), result.embeddings())

