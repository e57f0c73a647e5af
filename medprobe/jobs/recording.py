"""What a site job writes to MLflow: run layout, tags, metrics and the artifacts that may leave the site (probe
heads included), and the runs of the transfer step."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medprobe.embed import Skipped, site_salt
from medprobe.errors import MedprobeError
from medprobe.models import model_card
from medprobe.pipeline_spec import PipelineSpec
from medprobe.pipeline_spec.pipeline import TaskSpec
from medprobe.privacy.guard import PathGuard
from medprobe.probes import ProtocolResult
from medprobe.tracking import TrackingStore, naming
from medprobe.tracking.recorder import RunRecorder, job_identity
from medprobe.tracking.redaction import redacted_spec
from medprobe.tracking.run_kinds import JOB, PROTOCOL, TRANSFER
from medprobe.transfer import HEAD_FOLDER, FeatureSpace, PublishedHead


@dataclass
class JobRun:
    run_id: str
    tags: dict[str, str]


class JobRecorder:
    """A site job's runs, through the one `RunRecorder`: to the job's results bundle always, and to MLflow unless
    offline or unreachable. Adds what only a job knows: its tags, run layout and the spec it ran."""

    def __init__(self, spec: PipelineSpec, manifest: pd.DataFrame, offline: bool = False,
                 require_server: bool = False) -> None:
        """Nothing logged may name a folder of the `manifest`'s image paths (its label values are public: the
        predictions hold them). With `require_server`, an unreachable tracking store is an error (before any
        bundle is created)."""
        self.spec = spec
        guard = PathGuard.for_paths([*manifest["path"].astype(str), spec.data.manifest],
                                    public=public_words(spec, manifest), folders=[spec.workdir])
        self.salt = site_salt(spec.workdir)  # the site's one salt: pseudonyms and the job identity
        job = job_identity(spec.experiment_name, spec.site, spec.name, spec.workdir, self.salt)
        self.runs = RunRecorder(spec.tracking.uri, spec.experiment_name, bundle_dir=spec.paths.bundles,
                                offline=offline, require_server=require_server, job=job, guard=guard)
        self.display_uri = self.runs.display_uri

    def __enter__(self) -> JobRecorder:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        self.runs.__exit__(kind, error, trace)

    @property
    def bundle_path(self) -> Path | None:
        return self.runs.bundle_path

    @property
    def offline_reason(self) -> str | None:
        """Why the runs are only in the bundle (None when MLflow received everything)."""
        return self.runs.offline_reason

    @property
    def server(self) -> TrackingStore | None:
        """The tracking store while it answers; None offline."""
        return self.runs.server

    def start_job_run(self, space: FeatureSpace, task: TaskSpec, digest: str, n_samples: int,
                      n_subjects: int) -> JobRun:
        tags = self._tags(space, task, digest)
        name = naming.job_run_name(self.spec.site, space.model, task.name)
        run_id = self.runs.start_run(JOB, name, tags)
        self.runs.log(run_id, params={"n_samples": n_samples, "n_subjects": n_subjects,
                                      "embed_dim": space.embed_dim, "modality": self.spec.data.modality})
        self.runs.log_json(run_id, redacted_spec(self.spec.model_dump(mode="json")), "spec.json")
        card = model_card(space.architecture)
        self.runs.log_json(run_id, card.__dict__, "model_card.json")
        return JobRun(run_id, tags)

    def log_protocol(self, job: JobRun, model: str, task: TaskSpec, protocol: str, result: ProtocolResult,
                     label_notes: Sequence[str], sample_ids: np.ndarray, head: Sequence[Path] = (),
                     plots: Sequence[Path] = (),
                     analysis: tuple[Mapping[str, float], Mapping[str, str]] = ({}, {}),
                     files: Sequence[Path] = ()) -> str:
        """One child run of `job`, finished once all its files are logged; `head` names the files of the probe
        head it publishes (linear only), `plots` the protocol's figures, `analysis` the (metrics, params) of its
        subgroups and label-efficiency curve (`medprobe.jobs.analysis_runs`) or of the robustness protocol,
        `files` other tables to attach. A run with neither `test/` nor analysis metrics is marked failed."""
        name = naming.protocol_run_name(self.spec.site, model, task.name, protocol)
        run_id = self.runs.start_run(PROTOCOL, name, {**job.tags, naming.PROTOCOL: protocol}, parent=job.run_id)
        for path in head:
            self.runs.log_file(run_id, path, HEAD_FOLDER)
        if head:
            self.runs.log(run_id, tags={naming.HEAD: HEAD_FOLDER})
        for plot in plots:
            if plot.is_file():
                self.runs.log_file(run_id, plot, "plots")
        for path in files:
            self.runs.log_file(run_id, path)
        self.runs.log_result(run_id, result, label_notes, sample_ids)
        metrics, params = analysis
        if metrics or params:
            self.runs.log(run_id, metrics=metrics, params=params)
        self.runs.finish(run_id)
        return run_id

    def log_transfer(self, space: FeatureSpace, task: TaskSpec, digest: str, source: PublishedHead,
                     result: ProtocolResult, label_notes: Sequence[str], sample_ids: np.ndarray) -> str:
        """A top-level run: `source`'s head scored on this site's rows."""
        train_site = source.head.site
        tags = {**self._tags(space, task, digest), naming.PROTOCOL: TRANSFER, naming.TRAIN_SITE: train_site,
                naming.HEAD_RUN_UID: source.run_uid}
        name = naming.transfer_run_name(train_site, self.spec.site, space.model, task.name)
        run_id = self.runs.start_run(TRANSFER, name, tags)
        self.runs.log_result(run_id, result, label_notes, sample_ids)
        self.runs.finish(run_id)
        return run_id

    def _tags(self, space: FeatureSpace, task: TaskSpec, digest: str) -> dict[str, str]:
        tags = {
            naming.SITE: self.spec.site,
            **naming.model_tags(space.model, space.architecture, space.fingerprint, space.weights,
                                space.pretrained),
            naming.TASK: task.name,
            naming.TASK_TYPE: task.type,
            naming.TARGET: task.target,
            naming.DATASET_DIGEST: digest,
            naming.PIPELINE: self.spec.name,
            # the chain's digest: the authors' defaults, a spec's overrides or model_defaults: false all change it
            naming.PREPROCESSING: space.preprocessing,
        }
        return tags

    def finish_job_run(self, job: JobRun, skipped: Sequence[Skipped], files: Sequence[Path] = ()) -> None:
        """The job run's own files (the evaluation's metrics.json with its intervals, its subgroup and
        label-efficiency tables; what was skipped), then the run is finished."""
        for path in files:
            if path.is_file():
                self.runs.log_file(job.run_id, path)
        if skipped:
            rows = [{"sample_id": s.sample_id, "category": s.cause.category, "reason": s.reason} for s in skipped]
            self.runs.log_json(job.run_id, {"skipped": rows}, "quarantine.json")
        by_category = Counter(s.cause.category for s in skipped)
        self.runs.log(job.run_id, metrics={"data/skipped_inputs": len(skipped),
                                           **{f"data/skipped/{c}": n for c, n in sorted(by_category.items())}})
        self.runs.finish(job.run_id)


def public_words(spec: PipelineSpec, manifest: pd.DataFrame) -> list[str]:
    """What a job logs by design and a folder may also be called: these are not looked for in logged text."""
    words = [spec.site, spec.name, spec.data.modality, *spec.experiment_name.split("/")]
    words += [name for m in spec.models for name in (m.key, m.name)]
    words += [json.dumps(card.__dict__, default=str) for card in _cards(spec)]  # logged as model_card.json
    words += [name for t in spec.tasks for name in (t.name, t.target)]
    for task in spec.tasks:
        if task.type == "classification" and task.target in manifest.columns:
            words += manifest[task.target].dropna().astype(str).unique().tolist()[:1000]
    subgroups = spec.analysis.subgroups
    if subgroups is not None:  # group names are logged as parameters and key segments
        words += subgroups.attributes
        words += [v for c in subgroups.columns if c in manifest.columns
                  for v in manifest[c].dropna().astype(str).unique().tolist()[:1000]]
    return words


def _cards(spec: PipelineSpec) -> list[Any]:
    """The cards of the job's models that have one (an `hf:` folder has none)."""
    cards = []
    for model in spec.models:
        try:
            cards.append(model_card(model.name))
        except MedprobeError:
            continue
    return cards
