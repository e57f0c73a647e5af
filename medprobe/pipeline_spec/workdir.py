"""The layout of a site job's working folder, spelled once: every step asks `Workdir` for its paths.

    cache/                                    content-addressed embeddings, shared by every job and shard
    embeddings/<model>.parquet                the job's embedding table per model
    evaluation/<model>/<task>/                metrics.json, predictions, plots, analyses of every protocol
    evaluation/paired.csv                     paired comparisons between models
    heads/<model>/<task>/                     the linear probe head the site publishes
    robustness/<model>/<artefact>-s<k>.parquet the corrupted test embeddings
    diagnostics/                              embedding diagnostics and CKA
    bundles/                                  the offline bundles of the job's MLflow runs
    results.json                              the job's outcome
    quarantine.csv, local-only/               what was skipped (`medprobe.embed.quarantine`)
    subject-salt.txt, .medprobe.lock          the site's salt (`medprobe.embed.pseudonyms`), the job's lock
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Workdir:
    """The paths of a site job under `root` (its spec's `workdir`)."""

    root: Path

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    def table(self, model: str) -> Path:
        return self.root / "embeddings" / f"{model}.parquet"

    def evaluation(self, model: str, task: str) -> Path:
        return self.root / "evaluation" / model / task

    @property
    def paired(self) -> Path:
        return self.root / "evaluation" / "paired.csv"

    def heads(self, model: str, task: str) -> Path:
        return self.root / "heads" / model / task

    def robustness(self, model: str) -> Path:
        return self.root / "robustness" / model

    @property
    def diagnostics(self) -> Path:
        return self.root / "diagnostics"

    @property
    def bundles(self) -> Path:
        return self.root / "bundles"

    @property
    def results(self) -> Path:
        return self.root / "results.json"
