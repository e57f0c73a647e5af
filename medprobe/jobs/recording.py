"""What a site job writes to MLflow: run layout, tags, metrics and the artifacts that may leave the site (probe
heads included), and the runs of the transfer step."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medprobe import __version__
from medprobe.embed import Skipped
from medprobe.errors import TrackingError
from medprobe.models import model_card
from medprobe.probes import ProtocolResult
from medprobe.spec import PipelineSpec
from medprobe.spec.pipeline import TaskSpec
from medprobe.tracking import TrackingStore, naming
from medprobe.tracking.bundle import ResultsBundle
from medprobe.tracking.redaction import redacted_spec, redacted_uri
from medprobe.tracking.tee import SERVER_FAILURES, TeeStore
from medprobe.transfer import HEAD_FOLDER, FeatureSpace, PublishedHead


@dataclass
class JobRun:
    run_id: str
    tags: dict[str, str]


class JobRecorder:
    """Writes every run to the job's results bundle, and to MLflow unless offline or unreachable."""

    def __init__(self, spec: PipelineSpec, offline: bool = False, require_server: bool = False) -> None:
        """With `require_server`, an unreachable tracking store is an error (before any bundle is created)."""
        self.spec = spec
        self.display_uri = redacted_uri(spec.tracking.uri)
        online, reason = (None, "--offline") if offline else _connect(spec.tracking.uri)
        if online is None and require_server:
            raise TrackingError(f"cannot use the tracking store {self.display_uri}: {reason}")
        self.store = TeeStore(ResultsBundle.new(spec.workdir / "bundles"), online, reason)
        self.experiment_id = self.store.experiment_id(spec.experiment_name)

    @property
    def bundle_path(self) -> Path:
        return self.store.bundle.root

    @property
    def offline_reason(self) -> str | None:
        """Why the runs are only in the bundle (None when MLflow received everything)."""
        return self.store.offline_reason

    @property
    def server(self) -> TrackingStore | None:
        """The tracking store while it answers; None offline."""
        return self.store.online

    def start_job_run(self, space: FeatureSpace, task: TaskSpec, digest: str, n_samples: int,
                      n_subjects: int) -> JobRun:
        tags = self._tags(space, task, digest)
        name = naming.job_run_name(self.spec.site, space.model, task.name)
        run_id = self.store.start_run(self.experiment_id, name, {**tags, naming.RUN_KIND: "job"})
        self.store.log(run_id, params={"n_samples": n_samples, "n_subjects": n_subjects,
                                       "embed_dim": space.embed_dim, "modality": self.spec.data.modality})
        self.store.log_json(run_id, redacted_spec(self.spec), "spec.json")
        card = model_card(space.architecture)
        self.store.log_json(run_id, card.__dict__, "model_card.json")
        return JobRun(run_id, tags)

    def log_protocol(self, job: JobRun, model: str, task: TaskSpec, protocol: str, result: ProtocolResult,
                     label_notes: Sequence[str], sample_ids: np.ndarray, head: Sequence[Path] = ()) -> str:
        """One child run of `job`; `head` names the files of the probe head it publishes (linear only)."""
        name = naming.protocol_run_name(self.spec.site, model, task.name, protocol)
        run_id = self.store.start_run(
            self.experiment_id, name, {**job.tags, naming.PROTOCOL: protocol, naming.RUN_KIND: "protocol"},
            parent_run_id=job.run_id,
        )
        for path in head:
            self.store.log_file(run_id, path, HEAD_FOLDER)
        if head:
            self.store.log(run_id, tags={naming.HEAD: HEAD_FOLDER})
        self._log_result(run_id, result, label_notes, sample_ids)
        return run_id

    def log_transfer(self, space: FeatureSpace, task: TaskSpec, digest: str, source: PublishedHead,
                     result: ProtocolResult, label_notes: Sequence[str], sample_ids: np.ndarray) -> str:
        """A top-level run: `source`'s head scored on this site's rows."""
        train_site = source.head.site
        tags = {**self._tags(space, task, digest), naming.PROTOCOL: "transfer", naming.RUN_KIND: "transfer",
                naming.TRAIN_SITE: train_site, naming.HEAD_RUN_UID: source.run_uid}
        name = naming.transfer_run_name(train_site, self.spec.site, space.model, task.name)
        run_id = self.store.start_run(self.experiment_id, name, tags)
        self._log_result(run_id, result, label_notes, sample_ids)
        return run_id

    def _tags(self, space: FeatureSpace, task: TaskSpec, digest: str) -> dict[str, str]:
        tags = {
            naming.SITE: self.spec.site,
            naming.MODEL: space.model,
            naming.ARCHITECTURE: space.architecture,
            naming.MODEL_FINGERPRINT: space.fingerprint,
            naming.WEIGHTS: space.weights,
            naming.TASK: task.name,
            naming.TASK_TYPE: task.type,
            naming.TARGET: task.target,
            naming.DATASET_DIGEST: digest,
            naming.VERSION: __version__,
            naming.PIPELINE: self.spec.name,
        }
        if not space.pretrained:
            tags[naming.RANDOM_INIT_NOTE] = naming.RANDOM_INIT_TEXT
        return tags

    def _log_result(self, run_id: str, result: ProtocolResult, label_notes: Sequence[str],
                    sample_ids: np.ndarray) -> None:
        """Metrics, parameters, notes and pseudonymised predictions; then the run is finished."""
        metrics = {naming.test_metric(k): v for k, v in result.metrics.items()}
        metrics |= {"data/n_train": result.n_train, "data/n_test": result.n_test}
        self.store.log(run_id, metrics=metrics, params=result.params)
        notes = [*label_notes, *result.notes]
        if notes:
            self.store.log_text(run_id, "\n".join(notes) + "\n", "notes.txt")
        if not result.predictions.empty:
            predictions = result.predictions.copy()
            if "row" in predictions.columns:
                predictions.insert(0, "sample_id", sample_ids[predictions["row"].to_numpy()])
                predictions = predictions.drop(columns=["row"])
            predictions = predictions.drop(columns=["subject_id"], errors="ignore")
            self.store.log_text(run_id, predictions.to_csv(index=False), "predictions.csv")
        self.store.finish(run_id, failed=not result.metrics)

    def log_evaluation_files(self, job: JobRun, protocol_runs: dict[str, str], folder: Path) -> None:
        """metrics.json (with the confidence intervals) on the job run; each protocol's plots on its run.
        Per-sample predictions stay in the workdir and in the protocol runs' predictions.csv."""
        if (folder / "metrics.json").is_file():
            self.store.log_file(job.run_id, folder / "metrics.json")
        for protocol, run_id in protocol_runs.items():
            for plot in sorted((folder / "plots").glob(f"{protocol}_*.png")):
                self.store.log_file(run_id, plot, "plots")

    def finish_job_run(self, job: JobRun, skipped: Sequence[Skipped]) -> None:
        if skipped:
            rows = [{"sample_id": s.sample_id, "reason": s.reason} for s in skipped]
            self.store.log_json(job.run_id, {"skipped": rows}, "quarantine.json")
        self.store.log(job.run_id, metrics={"data/skipped_inputs": len(skipped)})
        self.store.finish(job.run_id)


def _connect(uri: str) -> tuple[TrackingStore | None, str | None]:
    """The MLflow store, or None and the reason when it cannot be reached now."""
    try:
        store = TrackingStore(uri)
        store.client.search_experiments(max_results=1)
    except SERVER_FAILURES as exc:
        return None, f"tracking server unreachable ({type(exc).__name__})"
    return store, None
