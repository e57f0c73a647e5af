"""The consortium tracking server as docker/compose.yaml runs it, on loopback: docker/tracking/serve_tracking.py
(secrets from files, a password with URL-special characters, a wait for the database) starting MLflow's basic-auth
app with medprobe's site guard behind TLS with a self-signed certificate, on a real PostgreSQL server.

Checked: no credentials or a wrong password are refused; a client that does not trust the certificate is refused;
two sites with EDIT on the shared experiment each write their own runs, and neither can change, tag, upload into or
claim the other's. Site jobs, `sync` and `compare` against this server with per-site credentials from the environment
run in docker/smoke.sh (a step of .ci/run), on the compose stack: the same entrypoint, app and TLS."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from mlflow.entities import Param
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from medprobe.tracking import naming
from tests.tracking import postgres_server as pg
from tests.tracking.processes import free_port, stop_group

postgres_server = pg.postgres_server

pytestmark = pytest.mark.slow(seconds=30)

REPOSITORY = Path(__file__).resolve().parents[2]
SERVE = REPOSITORY / "docker" / "tracking" / "serve_tracking.py"
ADMIN_PASSWORD = " adm1n p@ss:w/rd?%#&= "  # spaces at both ends too
DB_PASSWORD = "db p@ss:w/rd?%#&= ünï"
SITE_PASSWORDS = {"site-a": "a-secret p@ss%", "site-b": "b-secret /?:@"}
EXPERIMENT = "medprobe/auth-consortium"
START_S = 120


def _write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n", encoding="utf-8")
    path.chmod(mode)
    return path


def _certificate(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "tls_cert.pem", folder / "tls_key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def auth_server(postgres_server: pg.PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    folder = tmp_path_factory.mktemp("auth-server")
    cert, key = _certificate(folder)
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_DB_HOST": "127.0.0.1", "MLFLOW_DB_PORT": str(postgres_server.port), "MLFLOW_DB_NAME": pg.DATABASE,
        "MLFLOW_DB_USER": pg.DB_USER, "MLFLOW_DB_PASSWORD_FILE": str(_write(folder / "db_password", DB_PASSWORD)),
        "MLFLOW_ADMIN_PASSWORD_FILE": str(_write(folder / "admin_password", ADMIN_PASSWORD)),
        "MLFLOW_SECRET_KEY_FILE": str(_write(folder / "secret_key", "a-flask-secret-key-for-the-test")),
        "MLFLOW_AUTH_APP": "medprobe-sites", "MLFLOW_TLS_CERT_FILE": str(cert), "MLFLOW_TLS_KEY_FILE": str(key),
        "MLFLOW_HOST": "127.0.0.1", "MLFLOW_PORT": str(port), "MLFLOW_DISABLE_TELEMETRY": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    log = folder / "server.log"
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, str(SERVE), "--workers", "1", "--serve-artifacts",
                                    "--artifacts-destination", str(folder / "artifacts")],
                                   stdout=out, stderr=out, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + START_S
        while subprocess.run([sys.executable, str(SERVE), "--check"], env=env, capture_output=True).returncode:
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the tracking server did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        uri = f"https://127.0.0.1:{port}"
        _site_accounts(uri, cert)
        yield {"uri": uri, "cert": str(cert), "log": log}
    finally:
        stop_group(process, 20)


def _site_accounts(uri: str, cert: Path) -> None:
    """The admin makes one account per site, named after the site."""
    from mlflow.server import get_app_client

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        patch.setenv("MLFLOW_TRACKING_PASSWORD", ADMIN_PASSWORD)
        patch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(cert))
        users = get_app_client("medprobe-sites", tracking_uri=uri)
        for site, password in SITE_PASSWORDS.items():
            users.create_user(site, password)


def _as(monkeypatch: pytest.MonkeyPatch, server: dict, user: str, password: str) -> MlflowClient:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", server["cert"])
    return MlflowClient(server["uri"])


def _refused(call, *args, **kwargs) -> str:
    with pytest.raises((MlflowException, requests.HTTPError)) as refusal:
        call(*args, **kwargs)
    return str(refusal.value)


def test_the_server_needs_a_password_and_a_trusted_certificate(auth_server: dict) -> None:
    search = f"{auth_server['uri']}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(search, verify=auth_server["cert"], timeout=10).status_code == 401
    assert requests.get(search, auth=("admin", "wrong"), verify=auth_server["cert"], timeout=10).status_code == 401
    assert requests.get(search, auth=("admin", ADMIN_PASSWORD), verify=auth_server["cert"],
                        timeout=10).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):  # the system's CAs do not vouch for a self-signed certificate
        requests.get(search, auth=("admin", ADMIN_PASSWORD), timeout=10)
    with pytest.raises(requests.exceptions.ConnectionError):  # no plain HTTP on the TLS port
        requests.get(search.replace("https://", "http://"), timeout=10)
    assert DB_PASSWORD not in auth_server["log"].read_text(errors="replace")


def test_sites_write_only_their_own_runs(auth_server: dict, monkeypatch: pytest.MonkeyPatch,
                                         tmp_path: Path) -> None:
    from mlflow.server import get_app_client

    admin = _as(monkeypatch, auth_server, "admin", ADMIN_PASSWORD)
    users = get_app_client("medprobe-sites", tracking_uri=auth_server["uri"])
    experiment = admin.create_experiment(f"{EXPERIMENT}/guard")
    for site in SITE_PASSWORDS:
        users.grant_user_permission(site, "experiment", experiment, "EDIT")

    site_a = _as(monkeypatch, auth_server, "site-a", SITE_PASSWORDS["site-a"])
    run_a = site_a.create_run(experiment, tags={naming.SITE: "site-a"}).info.run_id
    site_a.log_metric(run_a, "test/auroc", 0.8)
    (tmp_path / "note.txt").write_text("site a")
    site_a.log_artifact(run_a, str(tmp_path / "note.txt"))
    for claim in ({naming.SITE: "site-b"}, {}):
        assert "must carry the tag medprobe.site=site-a" in _refused(site_a.create_run, experiment, tags=claim)

    site_b = _as(monkeypatch, auth_server, "site-b", SITE_PASSWORDS["site-b"])
    run_b = site_b.create_run(experiment, tags={naming.SITE: "site-b"}).info.run_id
    site_b.set_tag(run_b, "note", "mine")
    for refused in (lambda: site_b.set_tag(run_a, "note", "overwritten by b"),
                    lambda: site_b.log_metric(run_a, "test/auroc", 0.1),
                    lambda: site_b.log_batch(run_a, params=[Param("from", "b")]),
                    lambda: site_b.set_terminated(run_a, "FAILED"),
                    lambda: site_b.log_artifact(run_a, str(tmp_path / "note.txt"), "from-b")):
        assert "medprobe site guard: the run belongs to site-a" in _refused(refused)
    assert "403" in _refused(site_b.delete_run, run_a)  # MLflow's own rule: deleting a run needs MANAGE
    # The ways around a naive guard (each let a write into site-a's run through before the guard knew it).
    api, auth, cert = f"{auth_server['uri']}/api/2.0", ("site-b", SITE_PASSWORDS["site-b"]), auth_server["cert"]
    token = base64.b64encode(f"site-b:{SITE_PASSWORDS['site-b']}".encode()).decode()
    sneaky = [
        ("POST", f"{api}/mlflow/runs/set-tag", {"run_uuid": run_b, "runId": run_a, "key": "k", "value": "v"}, {}),
        ("POST", f"{auth_server['uri']}/ajax-api/2.0/mlflow/upload-artifact?run_uuid={run_a}&path=evil.txt", None, {}),
        ("PUT", f"{api}/mlflow-artifacts/artifacts/{experiment}/{run_a}/artifacts/evil.txt", None,
         {"Authorization": f"Basic  {token}"}),
        ("PUT", f"{api}/mlflow-artifacts/artifacts/{experiment}%252F{run_a}/artifacts/evil.txt", None, {}),
        ("POST", f"{api}/mlflow/runs/set-tag", {"run_id": run_b, "key": naming.SITE, "value": "site-a"}, {}),
    ]
    for method, url, body, headers in sneaky:
        answer = requests.request(method, url, json=body, data=None if body is not None else b"x",
                                  auth=None if headers else auth, headers=headers, verify=cert, timeout=20)
        assert answer.status_code == 403, (method, url, answer.status_code, answer.text[:300])
    assert site_b.get_run(run_b).data.tags[naming.SITE] == "site-b"
    # Reading is MLflow's permission model: EDIT (and the server's default READ) shows the other site's results.
    seen = site_b.get_run(run_a)
    assert seen.data.metrics == {"test/auroc": 0.8} and not {"note", "k"} & set(seen.data.tags)
    assert seen.info.status == "RUNNING" and [a.path for a in site_b.list_artifacts(run_a)] == ["note.txt"]

    admin = _as(monkeypatch, auth_server, "admin", ADMIN_PASSWORD)
    admin.set_tag(run_a, "reviewed", "yes")  # the consortium's admin is not a site
    assert "401" in _refused(_as(monkeypatch, auth_server, "site-c", "unknown").get_run, run_a)
