"""The consortium server's site guard: MLflow's basic-auth app, plus "a site writes only its own runs".

MLflow's permission model is per experiment (and per registered model): a user has READ, USE, EDIT, MANAGE or no
permission on an experiment, and every run of the experiment inherits it. medprobe lines the sites up in one
experiment per pipeline, so every site needs EDIT on it, and with EDIT MLflow lets a site change, tag or delete any
run of the experiment, another site's included. This app closes that gap: for a user who is not an admin,

- creating a run needs the tag `medprobe.site` equal to the user's name (site accounts are named after their site,
  the `site:` of their specs), so a site cannot file runs as another site;
- every call that changes a run (metrics, params, tags, status, deletion, artifact uploads and deletions through
  the server's artifact proxy) needs the run's `medprobe.site` tag to be the user's name.

Reading is MLflow's permission model unchanged: READ on an experiment shows all of its runs (medprobe logs only
aggregate results and closed-vocabulary tags to it), NO_PERMISSIONS hides the experiment.

Served with `mlflow server --app-name medprobe-sites` (the entry point `mlflow.app` of this package); the basic-auth
configuration (`MLFLOW_AUTH_CONFIG_PATH`, the admin) is MLflow's own.
"""

from __future__ import annotations

import re
from typing import Any

from medprobe.tracking.naming import SITE

#: REST calls that change one run (the `ajax-api` twins included); the run is named in the JSON body.
_RUN_WRITES = re.compile(
    r"^/(?:ajax-)?api/2\.0/mlflow/runs/"
    r"(?:update|delete|restore|log-metric|log-parameter|set-tag|delete-tag|log-batch|log-model|log-inputs|outputs)$"
)
_RUN_CREATE = re.compile(r"^/(?:ajax-)?api/2\.0/mlflow/runs/create$")
#: The artifact proxy (`--serve-artifacts`): uploads and deletions name `<experiment id>/<run id>/artifacts/...`.
_ARTIFACT_WRITES = re.compile(
    r"^/(?:ajax-)?api/2\.0/mlflow-artifacts/(?:artifacts|mpu/(?:create|complete|abort))/"
    r"(?P<experiment>[^/]+)/(?P<run>[0-9a-f]{32})/"
)
_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def create_app() -> Any:
    """MLflow's basic-auth app with the site guard run after its own checks."""
    from mlflow.server import app as flask_app
    from mlflow.server.auth import create_app as create_basic_auth_app

    served = create_basic_auth_app(flask_app)
    flask_app.before_request(guard_site_runs)
    if hasattr(served, "middleware"):  # under uvicorn: a FastAPI app, which serves artifact uploads itself
        served.middleware("http")(guard_artifact_uploads)
    return served


async def guard_artifact_uploads(request: Any, call_next: Any) -> Any:
    """Starlette middleware for the artifact uploads FastAPI serves without Flask. It runs before MLflow's own
    authentication and only ever refuses: the name it reads from the Authorization header is checked against the
    run's site, and a wrong password is still refused by MLflow after it."""
    import asyncio

    from starlette.responses import JSONResponse

    upload = _ARTIFACT_WRITES.match(request.url.path) if request.method in _WRITE_METHODS else None
    username = basic_auth_username(request.headers.get("authorization")) if upload else None
    if upload and username is not None and not await asyncio.to_thread(is_admin, username):
        owner = await asyncio.to_thread(run_site, upload.group("run"))
        if owner != username:
            return JSONResponse(refusal(not_the_owner(owner, username)), status_code=403)
    return await call_next(request)


def basic_auth_username(header: str | None) -> str | None:
    import base64
    import binascii

    if not header or not header.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(header.split(" ", 1)[1], validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return decoded.split(":", 1)[0] if ":" in decoded else None


def is_admin(username: str) -> bool:
    from mlflow.exceptions import MlflowException
    from mlflow.server.auth import store

    try:
        return bool(store.get_user(username).is_admin)
    except MlflowException:
        return False


def guard_site_runs() -> Any:
    """Flask hook: None lets the request through, a 403 response refuses it."""
    from flask import g, request
    from mlflow.server.auth import sender_is_admin

    username = getattr(g, "mlflow_authenticated_user", None)
    if username is None or request.method not in _WRITE_METHODS or sender_is_admin():
        return None
    body = request.get_json(silent=True) or {}
    if _RUN_CREATE.match(request.path):
        claimed = tag_value(body.get("tags") or [], SITE)
        if claimed != username:
            return forbidden(f"a run created by '{username}' must carry the tag {SITE}={username}")
        return None
    run_id = run_written(request.path, body)
    if run_id is None:
        return None
    owner = run_site(run_id)
    return None if owner == username else forbidden(not_the_owner(owner, username))


def run_written(path: str, body: dict[str, Any]) -> str | None:
    """The id of the run a write request changes, or None when the request changes no run."""
    if _RUN_WRITES.match(path):
        return str(body.get("run_id") or body.get("run_uuid") or "") or None
    artifact = _ARTIFACT_WRITES.match(path)
    return artifact.group("run") if artifact else None


def tag_value(tags: list[dict[str, Any]], key: str) -> str | None:
    for tag in tags:
        if isinstance(tag, dict) and tag.get("key") == key:
            return str(tag.get("value"))
    return None


def run_site(run_id: str) -> str | None:
    """The run's `medprobe.site` tag; None for a run without one or no such run (MLflow then answers itself)."""
    from mlflow.exceptions import MlflowException
    from mlflow.server.handlers import _get_tracking_store

    try:
        return _get_tracking_store().get_run(run_id).data.tags.get(SITE)
    except MlflowException:
        return None


def not_the_owner(owner: str | None, username: str) -> str:
    return f"the run belongs to {owner or 'no site'}; '{username}' may change only its own site's runs"


def refusal(message: str) -> dict[str, str]:
    """MLflow's error body, so that clients report the message."""
    return {"error_code": "PERMISSION_DENIED", "message": f"medprobe site guard: {message}"}


def forbidden(message: str) -> Any:
    from flask import make_response

    response = make_response(refusal(message))
    response.status_code = 403
    return response
