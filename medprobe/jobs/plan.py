"""`medprobe run SPEC --dry-run`: validate the spec and manifest and describe what a run would do."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from medprobe.errors import MedprobeError, WeightsError
from medprobe.jobs.datasets import site_rows
from medprobe.pipeline_spec import ModelSpec, PipelineSpec, load_manifest
from medprobe.probes.registry import applicable_protocols, prediction_protocols
from medprobe.split_column import table_split
from medprobe.tracking.redaction import redacted_uri

if TYPE_CHECKING:
    from medprobe.models.cards import ModelCard

#: Images the plan names one by one; `medprobe validate` lists every one.
_SHOWN_ISSUES = 10


def describe_plan(spec: PipelineSpec, check_read: bool = False) -> list[str]:
    """Lines describing the job, ending with the checks a dry run did not do; raises MedprobeError for anything
    that would stop it. `check_read` reads every image once through the job's reader and 4D policy (no
    embedding), so the plan names the images the job would skip."""
    manifest = site_rows(load_manifest(spec.data.manifest, spec.targets), spec.site,
                         spec.data.manifest)
    lines = [
        f"pipeline   {spec.name}",
        f"site       {spec.site}",
        f"manifest   {spec.data.manifest} ({len(manifest)} rows, {manifest['subject_id'].nunique()} subjects)",
        f"modality   {spec.data.modality}; intensity {spec.data.intensity().mode}",
    ]
    split = table_split(manifest)
    if split is not None:
        counts = pd.Series(split).replace("", "(blank)").value_counts().to_dict()
        lines.append("split      " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items(), key=str)))
    else:
        lines.append("split      none in the manifest (or blank): stratified group k-fold by subject")
    lines += _file_lines(manifest, spec, check_read)
    from medprobe.models import model_card  # imports torch: after the cheap checks of spec and manifest

    for model in spec.models:
        weights = _weights(model, model_card(model.name))
        label = f"{model.key} = {model.name}" if model.alias else model.name
        lines.append(f"model      {label} ({weights}; precision {model.precision}, batch {model.batch_size})")
    for task in spec.tasks:
        values = manifest[task.target].dropna()
        detail = f"{values.nunique()} classes" if task.type == "classification" else f"{len(values)} values"
        lines.append(f"task       {task.name}: {task.type} on '{task.target}' ({detail})")
    protocols = list(spec.protocols.enabled())
    lines.append(f"protocols  {', '.join(protocols)}")
    heads = "publishes its linear probe heads; " if "linear" in protocols else ""
    rows = "test split" if split is not None else "all labelled rows"
    lines.append(f"transfer   {heads}scores other sites' heads (same encoder fingerprint) on the {rows}")
    lines.append(f"tracking   {redacted_uri(spec.tracking.uri)} · experiment '{spec.experiment_name}'")
    lines.append(f"runs       {planned_runs(spec).describe()}")
    lines.append(f"workdir    {spec.workdir}")
    lines.append("not done   weights were not loaded into their architectures (missing or extra keys show when the "
                 "job loads them); nothing was embedded")
    if not check_read:
        lines.append("not done   image files were not read, only found: add --check-read to read each one")
    return lines


@dataclass(frozen=True)
class PlannedRuns:
    """The runs `run_job` creates for a spec, by kind, when every model embeds some samples and every step has
    something to log (a protocol that fails is still logged as a run)."""

    job: int
    protocol: int
    robustness: int
    paired: int
    diagnostics: int

    @property
    def total(self) -> int:
        return self.job + self.protocol + self.robustness + self.paired + self.diagnostics

    def describe(self) -> str:
        kinds = [f"{self.job} job", f"{self.protocol} protocol", f"{self.robustness} robustness",
                 f"{self.paired} paired", f"{self.diagnostics} diagnostics"]
        return (f"{self.total} run(s): {', '.join(kinds)}; plus one transfer run per task and head another site "
                "published for the same encoder (not known before the job)")


def planned_runs(spec: PipelineSpec) -> PlannedRuns:
    """What `medprobe.jobs.site_job.run_job` creates: per model and task one job run, one run per protocol that
    applies to the task type (few-shot does not to regression) and one robustness run when enabled; one paired run
    per compared pair of models, task and prediction protocol (`paired_step`); one diagnostics run. Which protocol
    applies and which scores its predictions is the protocol registry's (`medprobe.probes.registry`)."""
    enabled = list(spec.protocols.enabled())
    applicable = {task.name: applicable_protocols(enabled, task.type) for task in spec.tasks}
    per_model = sum(len(protocols) for protocols in applicable.values())
    pairs = _paired_pairs(spec)
    scored = prediction_protocols()
    paired = sum(len(pairs) * len([p for p in protocols if p in scored]) for protocols in applicable.values())
    robustness = len(spec.tasks) if spec.protocols.robustness is not None else 0
    models = len(spec.models)
    return PlannedRuns(job=models * len(spec.tasks), protocol=models * per_model, robustness=models * robustness,
                       paired=paired, diagnostics=1 if models else 0)


def _paired_pairs(spec: PipelineSpec) -> list[tuple[str, str]]:
    """The (model, baseline) pairs `paired_step` compares, from the spec alone: a model's architecture is its zoo
    name and it is pretrained when the spec gives it weights (what its `FeatureSpace` says once loaded)."""
    from medprobe.jobs.paired_step import job_pairs
    from medprobe.transfer import FeatureSpace

    if spec.analysis.paired.bootstrap < 1:
        return []
    spaces = [FeatureSpace(m.key, m.name, "", "planned" if m.weights is not None else "random-init", "", 0)
              for m in spec.models]
    return job_pairs(spec.analysis.paired, spaces)


def _file_lines(manifest: pd.DataFrame, spec: PipelineSpec, check_read: bool) -> list[str]:
    """A warning for the images the job would skip: missing ones, and with `check_read` unreadable ones and 4D
    series the preprocessing would refuse (`medprobe validate`'s own check)."""
    if not check_read:
        missing = [p for p in manifest["path"] if not Path(p).exists()]
        if missing:
            return [f"WARNING    {len(missing)} file(s) listed in the manifest do not exist and would be skipped"]
        return []
    from medprobe.pipeline_spec.validation import check_files

    issues = check_files(manifest, check_read=True, data=spec.data)
    lines = [f"files      every image read once with the job's reader: {len(issues)} would be skipped"]
    lines += [f"WARNING    {issue.reason}: {issue.path}" for issue in issues[:_SHOWN_ISSUES]]
    if len(issues) > _SHOWN_ISSUES:
        lines.append(f"WARNING    ... and {len(issues) - _SHOWN_ISSUES} more (medprobe validate --spec lists all)")
    return lines


def _weights(model: ModelSpec, card: ModelCard) -> str:
    """What the plan says of a model's weights, after the checks `check_weights_file` can do without loading."""
    if model.weights is None:
        return "no weights: RANDOM INIT (smoke test or control only)" if card.checkpoint_file else "no weights"
    if not model.weights.is_file():
        raise MedprobeError(f"models[{model.key}].weights: file not found: {model.weights} "
                            f"(expects {card.checkpoint_file} from {card.source})")
    from medprobe.models.weights import check_weights_file

    try:
        checks = check_weights_file(model.weights, card)
    except WeightsError as exc:
        raise WeightsError(f"models[{model.key}].weights: {exc}") from None
    return f"weights {model.weights.name}: {', '.join(checks)}"
