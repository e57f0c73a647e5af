"""What of a job spec may be written to MLflow: no local paths, no credentials."""

from __future__ import annotations

from typing import Any

from medprobe.tracking.uri import redacted_uri

LOCAL_PATH = "<local path>"


def redacted_spec(payload: dict[str, Any]) -> dict[str, Any]:
    """A resolved job spec (`spec.model_dump(mode="json")`) with every filesystem path replaced: paths can name
    patients, users and hospitals."""
    payload = {**payload, "data": dict(payload["data"]), "tracking": dict(payload["tracking"])}
    payload["data"]["manifest"] = LOCAL_PATH
    payload["workdir"] = LOCAL_PATH
    payload["models"] = [{**model, "weights": LOCAL_PATH if model.get("weights") else None}
                         for model in payload["models"]]
    payload["tracking"]["uri"] = redacted_uri(payload["tracking"]["uri"])
    return payload
