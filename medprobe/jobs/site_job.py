"""A site job, `medprobe run SPEC`: embed the site's images once per model, run every protocol on every task,
publish the linear probe heads, score the heads other sites published, log the results to MLflow, and report what
was skipped."""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from medprobe import __version__
from medprobe.embed import EmbedResult, EmbedSettings, embed_manifest, resolve_device
from medprobe.embed.quarantine import LOCAL_COLUMNS, quarantine_rows, write_quarantine
from medprobe.errors import ProbeError
from medprobe.evaluation import EvaluationResult, evaluate_task, write_report
from medprobe.evaluation.paired import PairedComparison
from medprobe.evaluation.report import analysis_files, protocol_plots
from medprobe.exit_codes import EXIT_BUNDLE_ONLY, EXIT_OK, EXIT_SKIPPED
from medprobe.jobs.analysis_runs import analysis_run_values
from medprobe.jobs.datasets import site_rows
from medprobe.jobs.diagnostics_step import diagnostics_step
from medprobe.jobs.paired_step import paired_step
from medprobe.jobs.recording import JobRecorder
from medprobe.jobs.robustness_scoring import RobustnessResult, TestEmbeddings
from medprobe.jobs.robustness_step import (
    Corrupted,
    embed_corrupted,
    headline_metrics,
    robustness_result,
    run_metrics,
)
from medprobe.jobs.transfer_step import TransferOutcome, offline_message, transfer_step
from medprobe.jobs.workdir_lock import hold_workdir
from medprobe.jobs.zeroshot_step import class_texts
from medprobe.models import Encoder, load_encoder
from medprobe.pipeline_spec import PipelineSpec, load_manifest
from medprobe.pipeline_spec.pipeline import ModelSpec, TaskSpec
from medprobe.preprocess import PreprocessChain
from medprobe.probes import ProtocolResult
from medprobe.probes.inputs import ClassText
from medprobe.probes.options import LinearOptions
from medprobe.probes.registry import get_protocol
from medprobe.tracking.recorder import OFFLINE_REASON, RunRecorder
from medprobe.transfer import FeatureSpace, fit_head, write_head
from medprobe.transfer.heads import ProbeHead

log = logging.getLogger("medprobe.job")


@dataclass
class ProtocolOutcome:
    model: str
    task: str
    protocol: str
    metrics: dict[str, float]
    notes: list[str]
    run_id: str | None = None
    n_test_subjects: int | None = None
    flags: list[str] = field(default_factory=list)  # `medprobe.evaluation.plausibility` flags


@dataclass
class JobReport:
    site: str
    experiment: str
    tracking_uri: str
    outcomes: list[ProtocolOutcome] = field(default_factory=list)
    quarantine: pd.DataFrame = field(default_factory=pd.DataFrame)
    failed_protocols: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    quarantine_path: Path | None = None
    bundle_path: Path | None = None
    offline_reason: str | None = None
    transfers: list[TransferOutcome] = field(default_factory=list)
    transfer_notes: list[str] = field(default_factory=list)
    paired: PairedComparison = field(default_factory=lambda: PairedComparison(pd.DataFrame()))
    robustness: list[tuple[str, str, RobustnessResult]] = field(default_factory=list)  # (model, task, result)
    diagnostics: pd.DataFrame = field(default_factory=pd.DataFrame)  # per model (`medprobe.jobs.diagnostics_step`)
    failed_runs: list[str] = field(default_factory=list)  # runs logged as FAILED (no usable result)

    @property
    def skipped_inputs(self) -> int:
        return 0 if self.quarantine.empty else int(self.quarantine["sample_id"].nunique())

    @property
    def bundle_only(self) -> bool:
        """The results went only to the bundle because the tracking store could not be reached (not --offline)."""
        return self.offline_reason is not None and self.offline_reason != OFFLINE_REASON

    @property
    def exit_code(self) -> int:
        """0 when everything ran and was delivered; 4 when the runs went only to the bundle although a tracking store
        was configured; else 3 when inputs, protocols or runs were skipped or failed (see medprobe.exit_codes)."""
        if self.bundle_only:
            return EXIT_BUNDLE_ONLY
        return EXIT_SKIPPED if self.skipped_inputs or self.failed_protocols or self.failed_runs else EXIT_OK


def run_job(spec: PipelineSpec, progress: bool = True, say: Callable[[str], None] = print,
            offline: bool = False) -> JobReport:
    """Embed, probe and record one site job, holding its workdir (a second job on it refuses). With `offline`, or
    when the tracking server cannot be reached, the runs go only to the results bundle (`report.bundle_path`), for
    `medprobe sync` later."""
    resolve_device(spec.probe_device)  # a GPU asked for and missing is an error before any embedding
    workdir = spec.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    manifest = site_rows(load_manifest(spec.data.manifest, spec.targets), spec.site,
                         spec.data.manifest)
    with hold_workdir(workdir):
        with JobRecorder(spec, manifest, offline=offline) as recorder:
            report = JobReport(spec.site, spec.experiment_name, recorder.display_uri, bundle_path=recorder.bundle_path)
            quarantine = _embed_and_evaluate(spec, manifest, recorder, report, say, progress)
        report.offline_reason = recorder.offline_reason
        report.failed_runs = list(recorder.runs.failed_runs)
        report.quarantine = pd.DataFrame(quarantine, columns=LOCAL_COLUMNS)
        report.quarantine_path = write_quarantine(workdir, quarantine)
        _write_local_results(spec.paths.results, report, recorder.runs)
    return report


def _embed_and_evaluate(spec: PipelineSpec, manifest: pd.DataFrame, recorder: JobRecorder, report: JobReport,
                        say: Callable[[str], None], progress: bool) -> list[dict[str, str]]:
    """Every model: embed once, evaluate every task; then the transfer step. Returns the quarantine rows."""
    salt = recorder.salt
    quarantine: list[dict[str, str]] = []
    tables: list[tuple[FeatureSpace, EmbedResult]] = []
    evaluations: dict[str, dict[str, EvaluationResult]] = defaultdict(dict)
    for model_spec in spec.models:
        encoder = _build_encoder(model_spec, say)
        chain = PreprocessChain(spec.data_for(model_spec), encoder.preprocessing)
        embedded = _embed(spec, model_spec, encoder, chain, manifest, salt, progress, report)
        quarantine += quarantine_rows(model_spec.key, embedded.skipped, manifest["path"].astype(str).tolist())
        say(f"  {model_spec.key}: {len(embedded)} embedded "
            f"({embedded.computed} computed, {embedded.cached} from cache, {len(embedded.skipped)} skipped)"
            f"{_precision_note(embedded)}")
        for note in embedded.notes:
            say(f"  {model_spec.key}: {note}")
        space = FeatureSpace.of_encoder(model_spec.key, encoder, chain.describe())
        X = embedded.embeddings() if len(embedded) else np.zeros((0, 0))  # read once for every task
        corrupted = _corrupted(spec, model_spec, encoder, manifest, salt, embedded, report, say)
        texts = class_texts(spec, encoder, model_spec.key, say)
        for task in spec.tasks:
            evaluations[task.name][space.model] = _evaluate_task(spec, space, task, embedded, X, recorder, report,
                                                                 say, salt, corrupted, texts.get(task.name))
        tables.append((space, embedded))
    started = time.perf_counter()
    report.paired = paired_step(spec.context, spec.analysis.paired, [space for space, _ in tables], evaluations,
                                recorder, say)
    report.seconds["paired"] += time.perf_counter() - started
    started = time.perf_counter()
    report.diagnostics = diagnostics_step(spec.context, spec.tasks, spec.analysis.subgroups, tables, recorder, say)
    report.seconds["diagnostics"] += time.perf_counter() - started
    _transfer(spec, tables, recorder, report, say)
    return quarantine


def _build_encoder(model_spec: ModelSpec, say: Callable[[str], None]) -> Encoder:
    encoder = load_encoder(model_spec.name, model_spec.weights, **model_spec.options)
    if not encoder.pretrained:
        say(f"  WARNING {model_spec.key}: no weights, so a RANDOM-INIT network: a smoke test or a control, "
            "not the pretrained model")
    return encoder


def _embed(spec: PipelineSpec, model_spec: ModelSpec, encoder: Encoder, chain: PreprocessChain,
           manifest: pd.DataFrame, salt: bytes, progress: bool, report: JobReport) -> EmbedResult:
    settings = _settings(spec, model_spec, manifest, salt, progress)
    table_path = spec.paths.table(model_spec.key)
    result = embed_manifest(manifest, encoder, chain, spec.paths.cache, settings, table_path)
    report.seconds["load"] += result.seconds.get("hash", 0.0) + result.seconds.get("load", 0.0)
    report.seconds["embed"] += sum(result.seconds.get(k, 0.0) for k in ("calibrate", "embed", "cache_write", "table"))
    return result


def _corrupted(spec: PipelineSpec, model_spec: ModelSpec, encoder: Encoder, manifest: pd.DataFrame, salt: bytes,
               embedded: EmbedResult, report: JobReport, say: Callable[[str], None]) -> Corrupted | str | None:
    """The robustness protocol's corrupted test embeddings (or why there are none); None when it is not enabled."""
    options = spec.protocols.robustness
    if options is None or len(embedded) == 0:
        return None
    started = time.perf_counter()
    settings = replace(_settings(spec, model_spec, manifest, salt, progress=False), precision=embedded.precision)
    corrupted = embed_corrupted(spec.context, options, spec.data_for(model_spec), model_spec.key, encoder, manifest,
                                settings, say)
    report.seconds["robustness"] += time.perf_counter() - started
    if isinstance(corrupted, str):
        say(f"  {model_spec.key}: robustness not run ({corrupted})")
    return corrupted


def _settings(spec: PipelineSpec, model_spec: ModelSpec, manifest: pd.DataFrame, salt: bytes,
              progress: bool) -> EmbedSettings:
    return EmbedSettings(
        site=spec.site,
        salt=salt,
        label_columns=tuple(spec.label_columns(manifest.columns)),
        modality=spec.data.modality,
        batch_size=model_spec.batch_size,
        precision=model_spec.precision,
        device=resolve_device(model_spec.device),
        num_workers=spec.num_workers,
        progress=progress,
        tokens=_wants_tokens(spec),
    )


def _wants_tokens(spec: PipelineSpec) -> bool:
    """Whether a protocol of the job reads patch tokens (the registry says which do)."""
    return any(get_protocol(name).tokens for name in spec.protocols.enabled())


def _precision_note(embedded: EmbedResult) -> str:
    if embedded.calibration_cosine is None:
        return f", {embedded.precision}"
    return f", {embedded.precision} (auto: bf16/fp32 cosine {embedded.calibration_cosine:.5f})"


def _evaluate_task(spec: PipelineSpec, space: FeatureSpace, task: TaskSpec, embedded: EmbedResult,
                   embeddings: np.ndarray, recorder: JobRecorder, report: JobReport, say: Callable[[str], None],
                   salt: bytes, corrupted: Corrupted | str | None = None,
                   class_text: ClassText | str | None = None) -> EvaluationResult:
    """Every protocol on the rows labelled for `task` (`evaluate_task`, as `medprobe evaluate` runs it) with the
    spec's subgroups and label-efficiency curve, the linear head published and scored on the `corrupted` test
    embeddings (the robustness protocol), and the runs logged; `embeddings` are the table's vectors, all rows."""
    started = time.perf_counter()
    tokens = embedded.tokens() if _wants_tokens(spec) and len(embedded) else None
    evaluation = evaluate_task(embedded.frame, embeddings, task.target, task.type, spec.protocols.enabled(),
                               spec.seed, tokens=tokens, analysis=spec.analysis,
                               device=str(resolve_device(spec.probe_device)), class_text=class_text)
    rows = evaluation.rows
    heads: dict[str, list[Path]] = {}
    head = None
    linear = spec.protocols.linear
    if linear is not None and "linear" in evaluation.results:
        head = _publish_head(spec, space, task, evaluation, linear, say)
        heads["linear"] = write_head(head, spec.paths.heads(space.model, task.name)) if head else []
    folder = spec.paths.evaluation(space.model, task.name)
    write_report(evaluation, folder, salt=salt)
    report.seconds["probe"] += time.perf_counter() - started
    robustness = None
    for stale in (folder / "robustness.csv", folder / "plots" / "robustness_curves.png"):
        stale.unlink(missing_ok=True)
    if isinstance(corrupted, dict):
        started = time.perf_counter()
        try:
            if head is None:
                raise ProbeError("the linear probe head could not be fitted (see the linear protocol's notes)")
            clean = TestEmbeddings(embedded.frame["sample_id"].astype(str).to_numpy(), embeddings)  # read once
            assert spec.protocols.robustness is not None, "corrupted embeddings exist only when it is enabled"
            robustness = robustness_result(spec.context, spec.protocols.robustness, space, task.name, head, clean, rows,
                                           corrupted, folder)
        except ProbeError as exc:
            say(f"  {space.model}/{task.name}/robustness: not run ({exc})")
            report.outcomes.append(ProtocolOutcome(space.model, task.name, "robustness", {}, [f"not run: {exc}"]))
        report.seconds["robustness"] += time.perf_counter() - started

    started = time.perf_counter()
    job_run = recorder.start_job_run(space, task, rows.digest(), n_samples=len(rows),
                                     n_subjects=len(set(rows.subjects)))
    run_ids: dict[str, str] = {}
    for protocol, reason in evaluation.not_applicable.items():
        say(f"  {space.model}/{task.name}/{protocol}: not run ({reason})")
    for protocol in evaluation.options:
        result = evaluation.results.get(protocol)
        if result is None:
            reason = evaluation.failures[protocol]
            message = f"{space.model}/{task.name}/{protocol}: {reason}"
            report.failed_protocols.append(message)
            say(f"  SKIPPED {message}")
            result = ProtocolResult(metrics={}, predictions=pd.DataFrame(), params={}, n_train=0, n_test=0,
                                    notes=[reason])
        run_ids[protocol] = recorder.log_protocol(job_run, space.model, task, protocol, result,
                                                  [*rows.notes, *evaluation.analysis_notes(protocol)],
                                                  rows.sample_ids, heads.get(protocol, []),
                                                  protocol_plots(folder, protocol),
                                                  analysis_run_values(evaluation, protocol))
        report.outcomes.append(ProtocolOutcome(space.model, task.name, protocol, result.metrics,
                                               [*rows.notes, *result.notes, *evaluation.analysis_notes(protocol)],
                                               run_ids[protocol], result.n_test_subjects, result.flags))
    if robustness is not None:
        result, outcome = robustness
        run_id = recorder.log_protocol(job_run, space.model, task, "robustness", result, rows.notes, rows.sample_ids,
                                       plots=[folder / "plots" / "robustness_curves.png"],
                                       analysis=(run_metrics(outcome), {}), files=[folder / "robustness.csv"])
        report.robustness.append((space.model, task.name, outcome))
        report.outcomes.append(ProtocolOutcome(space.model, task.name, "robustness", headline_metrics(outcome),
                                               result.notes, run_id, result.n_test_subjects))
    recorder.finish_job_run(job_run, embedded.skipped, [folder / "metrics.json", *analysis_files(folder)])
    report.seconds["log"] += time.perf_counter() - started
    return evaluation


def _publish_head(spec: PipelineSpec, space: FeatureSpace, task: TaskSpec, evaluation: EvaluationResult,
                  options: LinearOptions, say: Callable[[str], None]) -> ProbeHead | None:
    """The linear protocol's head, fitted on the inputs the protocol ran on, or None when it cannot be fitted (the
    protocol's own result stands, with a note)."""
    result = evaluation.results["linear"]
    assert evaluation.inputs is not None, "the linear protocol ran, so its inputs exist"
    try:
        head = fit_head(evaluation.inputs, result, options, spec.seed, space, spec.site, task.name, task.target)
    except ProbeError as exc:
        result.notes.append(f"no probe head published: {exc}")
        say(f"  {space.model}/{task.name}: no probe head published: {exc}")
        return None
    return head


def _transfer(spec: PipelineSpec, tables: list[tuple[FeatureSpace, EmbedResult]], recorder: JobRecorder,
              report: JobReport, say: Callable[[str], None]) -> None:
    """After the site's own evaluation: score the heads other sites published, unless the job is offline."""
    if recorder.server is None:
        say(offline_message(recorder.offline_reason))
        return
    started = time.perf_counter()
    for space, embedded in tables:
        if len(embedded) == 0:
            continue
        outcomes, notes = transfer_step(spec.context, spec.tasks, spec.protocols.linear, space, embedded.frame,
                                        embedded.embeddings(), recorder, say)
        report.transfers += outcomes
        report.transfer_notes += notes
    report.seconds["transfer"] += time.perf_counter() - started


def _write_local_results(path: Path, report: JobReport, runs: RunRecorder) -> None:
    """Results land on local disk first, so a tracking outage never loses them; the file may be shared, so it goes
    through the same guard as what is logged. Each result names its run twice: `run_id`, the run's id in the
    results bundle (`medprobe sync` delivers it), and `mlflow_run_id`, the id MLflow gave it (null when the job
    was offline; after a sync, find the run by its `medprobe.run_uid` tag, which is the bundle id)."""
    def ids(run_id: str | None) -> dict[str, str | None]:
        return {"run_id": run_id, "mlflow_run_id": runs.server_run_id(run_id) if run_id else None}

    payload = {
        "medprobe_version": __version__,
        "site": report.site,
        "experiment": report.experiment,
        "outcomes": [
            {"model": o.model, "task": o.task, "protocol": o.protocol, "metrics": o.metrics, "notes": o.notes,
             **ids(o.run_id)}
            for o in report.outcomes
        ],
        "transfers": [
            {"train_site": t.train_site, "model": t.model, "task": t.task, "metrics": t.metrics, "notes": t.notes,
             **ids(t.run_id)}
            for t in report.transfers
        ],
        "transfer_notes": report.transfer_notes,
        "skipped_inputs": report.skipped_inputs,
        "failed_protocols": report.failed_protocols,
    }
    if runs.guard is not None:
        payload = runs.guard.value(json.loads(json.dumps(payload, default=str)))
    path.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
