"""`medprobe run SPEC --dry-run`: validate the spec and manifest and describe what a run would do."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from medprobe.errors import MedprobeError, WeightsError
from medprobe.evaluation.rows import table_split
from medprobe.jobs.datasets import site_rows
from medprobe.spec import ModelSpec, PipelineSpec, load_manifest
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
    jobs = len(spec.models) * len(spec.tasks)
    lines.append(f"runs       {jobs} job run(s) with {jobs * len(protocols)} protocol run(s)")
    lines.append(f"workdir    {spec.workdir}")
    lines.append("not done   weights were not loaded into their architectures (missing or extra keys show when the "
                 "job loads them); nothing was embedded")
    if not check_read:
        lines.append("not done   image files were not read, only found: add --check-read to read each one")
    return lines


def _file_lines(manifest: pd.DataFrame, spec: PipelineSpec, check_read: bool) -> list[str]:
    """A warning for the images the job would skip: missing ones, and with `check_read` unreadable ones and 4D
    series the preprocessing would refuse (`medprobe validate`'s own check)."""
    if not check_read:
        missing = [p for p in manifest["path"] if not Path(p).exists()]
        if missing:
            return [f"WARNING    {len(missing)} file(s) listed in the manifest do not exist and would be skipped"]
        return []
    from medprobe.spec.validation import check_files

    issues = check_files(manifest, check_read=True, preprocessing=spec.data.preprocessing)
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
