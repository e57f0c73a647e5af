"""Which requests the site guard reads as a write to a run, and whose (the server itself: test_auth_server.py)."""

from __future__ import annotations

import base64

import pytest

from medprobe.tracking.site_guard import basic_auth_username, run_written, tag_value

RUN = "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("path", [f"/api/2.0/mlflow/runs/{call}" for call in (
    "update", "delete", "restore", "log-metric", "log-parameter", "set-tag", "delete-tag", "log-batch", "log-model",
    "log-inputs", "outputs")] + ["/ajax-api/2.0/mlflow/runs/set-tag"])
def test_run_calls_name_their_run_in_the_body(path: str) -> None:
    assert run_written(path, {"run_id": RUN}) == RUN
    assert run_written(path, {"run_uuid": RUN}) == RUN
    assert run_written(path, {}) is None


@pytest.mark.parametrize("path", [
    f"/api/2.0/mlflow-artifacts/artifacts/3/{RUN}/artifacts/head.json",
    f"/ajax-api/2.0/mlflow-artifacts/artifacts/3/{RUN}/artifacts/a/b.png",
    f"/api/2.0/mlflow-artifacts/mpu/create/3/{RUN}/artifacts/big.bin",
])
def test_artifact_uploads_name_their_run_in_the_path(path: str) -> None:
    assert run_written(path, {}) == RUN


@pytest.mark.parametrize("path", ["/api/2.0/mlflow/runs/create", "/api/2.0/mlflow/runs/search",
                                  "/api/2.0/mlflow/experiments/create", "/api/2.0/mlflow-artifacts/artifacts/3/x"])
def test_other_calls_write_no_existing_run(path: str) -> None:
    assert run_written(path, {"run_id": RUN}) is None


def test_tags_and_basic_auth_headers() -> None:
    tags = [{"key": "medprobe.site", "value": "site-a"}, {"key": "other", "value": "x"}, "not a tag"]
    assert tag_value(tags, "medprobe.site") == "site-a" and tag_value(tags, "missing") is None
    header = "Basic " + base64.b64encode(b"site-a:p@ss:word").decode()
    assert basic_auth_username(header) == "site-a"
    for bad in (None, "", "Bearer token", "Basic not-base64!", "Basic " + base64.b64encode(b"no-colon").decode()):
        assert basic_auth_username(bad) is None
