"""Where a job's runs go: the tracking store's URI and the experiment (default `medprobe/<pipeline name>`)."""

from __future__ import annotations

from pydantic import Field

from medprobe.options import StrictModel

DEFAULT_URI = "sqlite:///mlflow.db"


class TrackingOptions(StrictModel):
    uri: str = Field(DEFAULT_URI, min_length=1)
    experiment: str | None = Field(None, min_length=1)
