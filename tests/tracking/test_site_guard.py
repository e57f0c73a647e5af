"""What the site guard refuses, decided from the request alone (the run's owner looked up by a stand-in); the
guard inside a real server: test_auth_server.py."""

from __future__ import annotations

import base64

import pytest

from medprobe.tracking import site_guard
from medprobe.tracking.site_guard import basic_auth_username, site_write_problem, unquoted

A_RUN, B_RUN = "a" * 32, "b" * 32


@pytest.fixture(autouse=True)
def owners(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(site_guard, "run_site", {A_RUN: "site-a", B_RUN: "site-b"}.get)


@pytest.mark.parametrize("call", ["update", "delete", "restore", "log-metric", "log-parameter", "set-tag",
                                  "delete-tag", "log-batch", "log-model", "log-inputs", "outputs"])
@pytest.mark.parametrize("prefix", ["/api/2.0/mlflow/runs/", "/ajax-api/2.0/mlflow/runs/",
                                    "/prefix/api/2.0/mlflow/runs/"])
def test_a_site_changes_only_its_own_runs(call: str, prefix: str) -> None:
    path = prefix + call
    assert site_write_problem("site-b", path, {"run_id": B_RUN}, {}) is None
    for key in ("run_id", "runId", "run_uuid", "runUuid"):
        assert "belongs to site-a" in site_write_problem("site-b", path, {key: A_RUN}, {})


def test_two_spellings_of_the_run_id_naming_two_runs_are_refused() -> None:
    problem = site_write_problem("site-b", "/api/2.0/mlflow/runs/set-tag",
                                 {"run_uuid": B_RUN, "runId": A_RUN, "key": "k", "value": "v"}, {})
    assert problem == "a write must name exactly one run"
    assert site_write_problem("site-b", "/api/2.0/mlflow/runs/set-tag", {"key": "k"}, {}) is not None


def test_the_site_tag_is_never_changed_or_removed() -> None:
    for call, body in (("set-tag", {"key": "medprobe.site", "value": "site-a"}),
                       ("delete-tag", {"key": "medprobe.site"}),
                       ("log-batch", {"tags": [{"key": "medprobe.site", "value": "site-a"}]})):
        problem = site_write_problem("site-b", f"/api/2.0/mlflow/runs/{call}", {"run_id": B_RUN, **body}, {})
        assert problem is not None and "never changed" in problem
    # Writing it again with its own value (as `medprobe sync` does) changes nothing and is let through.
    for call, body in (("set-tag", {"key": "medprobe.site", "value": "site-b"}),
                       ("log-batch", {"tags": [{"key": "medprobe.site", "value": "site-b"}]})):
        assert site_write_problem("site-b", f"/api/2.0/mlflow/runs/{call}", {"run_id": B_RUN, **body}, {}) is None


def test_runs_are_created_only_under_the_users_own_site() -> None:
    create = "/api/2.0/mlflow/runs/create"
    assert site_write_problem("site-b", create, {"tags": [{"key": "medprobe.site", "value": "site-b"}]}, {}) is None
    for tags in ([], [{"key": "medprobe.site", "value": "site-a"}],
                 [{"key": "medprobe.site", "value": "site-b"}, {"key": "medprobe.site", "value": "site-a"}]):
        assert "must carry the tag" in site_write_problem("site-b", create, {"tags": tags}, {})


@pytest.mark.parametrize("path", [
    f"/api/2.0/mlflow-artifacts/artifacts/3/{A_RUN}/artifacts/x.txt",
    f"/ajax-api/2.0/mlflow-artifacts/artifacts/3/{A_RUN}/artifacts/a/b.png",
    f"/api/2.0/mlflow-artifacts/mpu/create/3/{A_RUN}/artifacts/big.bin",
    unquoted(f"/api/2.0/mlflow-artifacts/artifacts/3%252F{A_RUN}/artifacts/x.txt"),
])
def test_artifact_writes_into_another_sites_run_are_refused(path: str) -> None:
    assert "belongs to site-a" in site_write_problem("site-b", path, {}, {})
    assert site_write_problem("site-a", path, {}, {}) is None


def test_the_ui_upload_names_its_run_in_the_query() -> None:
    path = "/ajax-api/2.0/mlflow/upload-artifact"
    assert "belongs to site-a" in site_write_problem("site-b", path, {}, {"run_uuid": A_RUN, "path": "x"})
    assert site_write_problem("site-b", path, {}, {"run_uuid": B_RUN, "path": "x"}) is None


@pytest.mark.parametrize("path", ["/api/2.0/mlflow/runs/create-promptlab-run", "/api/2.0/mlflow/traces/link-to-run",
                                  "/api/3.0/mlflow/traces", "/api/2.0/mlflow/logged-models",
                                  "/api/2.0/mlflow-artifacts/artifacts/not-a-run-path"])
def test_writes_a_site_never_needs_are_refused(path: str) -> None:
    assert site_write_problem("site-b", path, {"source_run_id": A_RUN}, {}) is not None


@pytest.mark.parametrize("path", ["/api/2.0/mlflow/runs/search", "/api/2.0/mlflow/experiments/search",
                                  "/api/2.0/mlflow/experiments/create"])
def test_searches_and_experiments_are_left_to_mlflow(path: str) -> None:
    assert site_write_problem("site-b", path, {"run_id": A_RUN}, {}) is None


def test_basic_auth_headers_are_read_as_leniently_as_mlflow_reads_them() -> None:
    token = base64.b64encode(b"site-a:p@ss:word").decode()
    for header in (f"Basic {token}", f"Basic  {token}", f"basic {token}", f"Basic {token.rstrip('=')}"):
        assert basic_auth_username(header) == "site-a", header
    for bad in (None, "", "Bearer token", "Basic", "Basic " + base64.b64encode(b"no-colon").decode()):
        assert basic_auth_username(bad) is None
