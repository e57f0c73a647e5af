"""The consortium server's site guard: MLflow's basic-auth app, plus "a site writes only its own runs".

MLflow's permission model is per experiment (and per registered model): a user has READ, USE, EDIT, MANAGE or no
permission on an experiment, and every run of the experiment inherits it. medprobe lines the sites up in one
experiment per pipeline, so every site needs EDIT on it, and with EDIT MLflow lets a site change, tag or delete any
run of the experiment, another site's included. This app closes that gap: for a user who is not an admin,

- creating a run needs the tag `medprobe.site` equal to the user's name (site accounts are named after their site,
  the `site:` of their specs), so a site cannot file runs as another site;
- every call that changes a run (metrics, params, tags, status, deletion, artifact uploads and deletions through
  the server's artifact proxy or the UI's upload) must name exactly one run, under whichever of MLflow's spellings
  of a run id, and that run's `medprobe.site` tag must be the user's name; the tag itself is never changed or
  removed after the run is created;
- writes a site never needs that could attach things to any run (prompt-lab runs, traces, logged models) are
  refused. Paths are checked fully percent-decoded, wherever the API sits under a prefix; an artifact upload whose
  user name the guard cannot read is refused.

Reading is MLflow's permission model unchanged: READ on an experiment shows all of its runs (medprobe logs only
aggregate results and closed-vocabulary tags to it), NO_PERMISSIONS hides the experiment.

Served with `mlflow server --app-name medprobe-sites` (the entry point `mlflow.app` of this package); the basic-auth
configuration (`MLFLOW_AUTH_CONFIG_PATH`, the admin) is MLflow's own.
"""

from __future__ import annotations

import re
from typing import Any

from medprobe.tracking.naming import SITE

#: REST calls that change one run (the `ajax-api` twins included); the run is named in the body or query.
_RUN_WRITES = re.compile(
    r"/(?:ajax-)?api/2\.0/mlflow/(?:runs/(?:update|delete|restore|log-metric|log-parameter|set-tag|delete-tag|"
    r"log-batch|log-model|log-inputs|outputs)|upload-artifact)$"
)
_RUN_CREATE = re.compile(r"/(?:ajax-)?api/2\.0/mlflow/runs/create$")
#: Writes a site never needs that can attach something to any run (prompt-lab runs without a site, traces linked to
#: a run, logged models naming a source run): refused to non-admins.
_NOT_FOR_SITES = re.compile(r"/mlflow/(?:runs/create-promptlab-run|traces|logged-models)(?:/|$)")
#: The artifact proxy (`--serve-artifacts`): uploads and deletions name `<experiment id>/<run id>/artifacts/...`.
_ARTIFACT_WRITES = re.compile(r"/mlflow-artifacts/(?:artifacts|mpu/(?:create|complete|abort))/")
_ARTIFACT_RUN = re.compile(_ARTIFACT_WRITES.pattern + r"(?P<experiment>[^/]+)/(?P<run>[0-9a-f]{32})/")
#: Every spelling of a run id MLflow's handlers accept.
_RUN_ID_KEYS = ("run_id", "runId", "run_uuid", "runUuid")
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
    authentication and only ever refuses: the user named in the Authorization header must own the run (a wrong
    password is still refused by MLflow after it), and an upload whose user it cannot read is refused."""
    import asyncio

    from starlette.responses import JSONResponse

    path = unquoted(request.url.path)
    if request.method not in _WRITE_METHODS or not _ARTIFACT_WRITES.search(path):
        return await call_next(request)
    username = basic_auth_username(request.headers.get("authorization"))
    if username is None:
        return JSONResponse(refusal("an artifact upload needs a user name the guard can read"), status_code=403)
    if not await asyncio.to_thread(is_admin, username):
        problem = await asyncio.to_thread(site_write_problem, username, path, {}, {})
        if problem is not None:
            return JSONResponse(refusal(problem), status_code=403)
    return await call_next(request)


def basic_auth_username(header: str | None) -> str | None:
    """The user name of a Basic Authorization header, parsed as leniently as MLflow parses it."""
    import base64
    import binascii

    parts = (header or "").split()
    if len(parts) != 2 or parts[0].lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(parts[1] + "=" * (-len(parts[1]) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
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
    body = request.get_json(silent=True)
    body = body if isinstance(body, dict) else {}
    problem = site_write_problem(username, unquoted(request.path), body, dict(request.args))
    return None if problem is None else forbidden(problem)


def site_write_problem(username: str, path: str, body: dict[str, Any], query: dict[str, str]) -> str | None:
    """Why the site `username` may not make this write, or None. `path` is fully percent-decoded."""
    if _NOT_FOR_SITES.search(path):
        return "site accounts do not write prompt-lab runs, traces or logged models"
    if _RUN_CREATE.search(path):
        claimed = {str(t.get("value")) for t in body.get("tags") or [] if isinstance(t, dict) and t.get("key") == SITE}
        return None if claimed == {username} else f"a run created by '{username}' must carry the tag {SITE}={username}"
    if _ARTIFACT_WRITES.search(path):
        artifact = _ARTIFACT_RUN.search(path)
        if artifact is None:
            return "an artifact write must name its experiment and run"
        run_ids = {artifact.group("run")}
    elif _RUN_WRITES.search(path):
        run_ids = run_ids_named(body, query)
        if len(run_ids) != 1:
            return "a write must name exactly one run"
        if changes_site_tag(body, username, deleting=path.endswith("/delete-tag")):
            return f"the tag {SITE} of a run is set when the run is created and never changed"
    else:
        return None
    owner = run_site(next(iter(run_ids)))
    return None if owner == username else not_the_owner(owner, username)


def run_ids_named(body: dict[str, Any], query: dict[str, str]) -> set[str]:
    """Every run id the request names, under any of the keys MLflow accepts, in the body or the query string."""
    return {str(source[key]) for source in (body, query) for key in _RUN_ID_KEYS if source.get(key)}


def changes_site_tag(body: dict[str, Any], username: str, deleting: bool) -> bool:
    """A delete-tag of `medprobe.site`, or a set-tag or log-batch giving it another value than the user's own
    (`medprobe sync` writes a run's tags again, the site tag with its own value)."""
    if body.get("key") == SITE and (deleting or body.get("value") != username):
        return True
    tags = [t for t in body.get("tags") or [] if isinstance(t, dict)]
    return any(t.get("key") == SITE and t.get("value") != username for t in tags)


def unquoted(path: str) -> str:
    """`path` percent-decoded until it no longer changes (a doubly encoded `%252F` is a `/` to MLflow in the end)."""
    from urllib.parse import unquote

    for _ in range(5):
        decoded = unquote(path)
        if decoded == path:
            return path
        path = decoded
    return path


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
