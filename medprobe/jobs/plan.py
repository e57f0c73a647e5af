"""`medprobe run SPEC --dry-run`: validate the spec and manifest and describe what a run would do."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medprobe.errors import MedprobeError
from medprobe.evaluation.rows import table_split
from medprobe.jobs.datasets import site_rows
from medprobe.spec import PipelineSpec, load_manifest
from medprobe.tracking.redaction import redacted_uri


def describe_plan(spec: PipelineSpec) -> list[str]:
    """Lines describing the job; raises MedprobeError for anything that would stop it."""
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
    missing = [p for p in manifest["path"] if not Path(p).exists()]
    if missing:
        lines.append(f"WARNING    {len(missing)} file(s) listed in the manifest do not exist and would be skipped")
    from medprobe.models import model_card  # imports torch: after the cheap checks of spec and manifest

    for model in spec.models:
        card = model_card(model.name)
        if model.weights is None:
            weights = "no weights: RANDOM INIT (smoke test or control only)" if card.checkpoint_file else "no weights"
        elif not model.weights.is_file():
            raise MedprobeError(f"models[{model.key}].weights: file not found: {model.weights} "
                                f"(expects {card.checkpoint_file} from {card.source})")
        else:
            weights = f"weights {model.weights.name}"
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
    return lines
