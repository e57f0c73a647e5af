"""Logging an evaluation with the same run layout as a site job: a parent run for the table and task, a child run
per protocol (through `RunRecorder.log_result`, as a site job logs it), the report's files on them. Every file of
a run is logged before the run is marked finished."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medprobe.evaluation.report import analysis_files, protocol_plots
from medprobe.evaluation.suite import EvaluationResult
from medprobe.jobs.analysis_runs import analysis_run_values
from medprobe.tracking import naming
from medprobe.tracking.recorder import RunRecorder
from medprobe.tracking.run_kinds import JOB, PROTOCOL


def log_evaluation(runs: RunRecorder, outcome: EvaluationResult, metadata: dict[str, Any], model: str,
                   out_dir: Path) -> str:
    """Return the parent run's uid. The report in `out_dir` (from `write_report`) gives metrics.json and plots;
    predictions are logged with sample pseudonyms only, as a site job logs them."""
    frame = outcome.frame
    sites = frame["site"].dropna().astype(str).unique() if "site" in frame.columns else []
    site = str(sites[0]) if len(sites) == 1 else ("multiple" if len(sites) else "unknown")
    fingerprint = str(metadata.get("encoder_fingerprint") or "")
    tags = {
        naming.SITE: site,
        **naming.model_tags(model, _architecture(metadata), fingerprint,
                            str(metadata.get("weights") or ""), pretrained=metadata.get("pretrained", True) is True),
        naming.TASK: outcome.target,
        naming.TASK_TYPE: outcome.task_type,
        naming.TARGET: outcome.target,
        naming.DATASET_DIGEST: outcome.rows.digest(),
    }
    tags = {key: value for key, value in tags.items() if value}
    name = naming.job_run_name(site, model, outcome.target)
    parent = runs.start_run(JOB, name, tags)
    runs.log(parent, params={"n_rows": outcome.n_rows})
    for protocol, result in outcome.results.items():
        child = runs.start_run(PROTOCOL, naming.protocol_run_name(site, model, outcome.target, protocol),
                               {**tags, naming.PROTOCOL: protocol}, parent)
        runs.log_result(child, result, [*outcome.rows.notes, *outcome.analysis_notes(protocol)],
                        outcome.rows.sample_ids)
        metrics, params = analysis_run_values(outcome, protocol)
        if metrics or params:
            runs.log(child, metrics=metrics, params=params)
        for plot in protocol_plots(out_dir, protocol):
            runs.log_file(child, plot, "plots")
        runs.finish(child)
    for path in [out_dir / "metrics.json", *analysis_files(out_dir)]:
        if path.is_file():
            runs.log_file(parent, path)
    runs.finish(parent)
    return parent


def _architecture(metadata: dict[str, Any]) -> str:
    """The encoder architecture a table was embedded with: medprobe's tables record it as `model` (the zoo or timm
    name), as a site job's runs tag it; tables from other tools may say nothing."""
    return str(metadata.get("architecture") or metadata.get("model") or "")
