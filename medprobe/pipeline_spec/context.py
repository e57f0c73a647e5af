"""What every step of a site job needs besides the options it owns: the site, the pipeline, the experiment, the
seed and the paths. Steps take this and their own options rather than the whole spec, so a step's inputs say what
it depends on."""

from __future__ import annotations

from dataclasses import dataclass

from medprobe.pipeline_spec.workdir import Workdir


@dataclass(frozen=True)
class JobContext:
    site: str
    pipeline: str
    experiment: str
    seed: int
    paths: Workdir
