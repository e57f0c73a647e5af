"""Two small sites writing to one tracking store: each a manifest of NIfTI volumes and a spec of its own."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

EXPERIMENT = "medprobe/unit"


def site_spec(tmp_path: Path, volume_dataset: Callable[..., Path], write_spec: Callable[..., Path], site: str,
              uri: str, relabel: Callable[[pd.DataFrame], None] | None = None, **overrides: object) -> Path:
    """The handcrafted model, the linear protocol (fewer bootstrap resamples, for speed) and a workdir per site."""
    manifest = volume_dataset(n=16, folder=f"data-{site}", subject_prefix=site[-1].upper())
    if relabel is not None:
        frame = pd.read_csv(manifest)
        relabel(frame)
        frame.to_csv(manifest, index=False)
    settings = {"protocols": {"linear": {"bootstrap": 100}}, "tracking": {"uri": uri},
                "workdir": str(tmp_path / f"work-{site}"), **overrides}
    return write_spec(manifest, f"{site}.yaml", site=site, **settings)


def runs_of_kind(uri: str, kind: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    return client.search_runs([experiment.experiment_id], f"tags.`medprobe.run_kind` = '{kind}'")
