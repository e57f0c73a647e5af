"""The consortium tracking server's entrypoint: secrets from files, a wait for the database, then `mlflow server`.

Run in the `mlflow-server` image (docker/Dockerfile), which has MLflow and psycopg but not medprobe: standard library
and those two only. Everything secret comes from files (or, failing that, the environment) and reaches MLflow
through its environment or a private config file, never a command line: `ps` shows no password.

Environment (files are compose secrets, /run/secrets/...):
  MLFLOW_DB_HOST, MLFLOW_DB_PORT, MLFLOW_DB_NAME, MLFLOW_DB_USER   the PostgreSQL backend store (postgres, 5432,
                                                                  mlflow, mlflow)
  MLFLOW_DB_PASSWORD_FILE (or MLFLOW_DB_PASSWORD)                  its password, any characters
  MLFLOW_DB_WAIT_S                                                 how long to wait for the database (120)
  MLFLOW_ADMIN_PASSWORD_FILE                                       turns on MLflow's basic-auth app; the admin's
                                                                  password (user MLFLOW_ADMIN_USERNAME, admin)
  MLFLOW_SECRET_KEY_FILE                                           the Flask secret key basic-auth needs
  MLFLOW_DEFAULT_PERMISSION                                        what a signed-in user may do in an experiment
                                                                  nobody granted them (READ)
  MLFLOW_AUTH_APP                                                  the auth app (basic-auth; medprobe's site
                                                                  guard: medprobe-sites)
  MLFLOW_TLS_CERT_FILE, MLFLOW_TLS_KEY_FILE                        serve HTTPS with this certificate and key
  MLFLOW_HOST, MLFLOW_PORT                                         where to listen (0.0.0.0, 5000)
  MLFLOW_UVICORN_OPTS                                              more uvicorn options (the TLS ones and a 5 s
                                                                  graceful shutdown are added)

`serve_tracking.py --check` is the health check: exit 0 when the server answers /health and the database answers a
query (MLflow's /health alone says OK while PostgreSQL is down). Other arguments go to `mlflow server` as they are.
"""

from __future__ import annotations

import os
import shlex
import ssl
import stat
import sys
import tempfile
import time
import urllib.parse
import urllib.request

EXIT_CONFIG = 2


def secret(name: str, required: bool = True) -> str | None:
    """`<name>_FILE`'s first line (the file is the way secrets should come), else `<name>` from the environment."""
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                return handle.readline().rstrip("\r\n")
        except OSError as exc:
            fail(f"cannot read {name}_FILE ({exc.strerror}); mount the secret file and check its permissions")
    value = os.environ.get(name)
    if value is None and required:
        fail(f"set {name}_FILE to a file holding the value (compose: secrets), or {name}")
    return value


def fail(message: str) -> None:
    print(f"serve_tracking: {message}", file=sys.stderr)
    sys.exit(EXIT_CONFIG)


def backend_store_uri() -> str:
    """The SQLAlchemy URI of the PostgreSQL store, user and password percent-encoded (`@ : / ?` and the rest)."""
    user = urllib.parse.quote(os.environ.get("MLFLOW_DB_USER", "mlflow"), safe="")
    password = urllib.parse.quote(secret("MLFLOW_DB_PASSWORD") or "", safe="")
    host = os.environ.get("MLFLOW_DB_HOST", "postgres")
    port = os.environ.get("MLFLOW_DB_PORT", "5432")
    database = urllib.parse.quote(os.environ.get("MLFLOW_DB_NAME", "mlflow"), safe="")
    return f"postgresql+psycopg://{user}:{password}@{host}:{port}/{database}"


def database_answers(uri: str) -> str | None:
    """None when the database answers `SELECT 1`, else why not (the error's class, never its text: it may quote
    the URI)."""
    import psycopg

    try:
        with psycopg.connect(uri.replace("postgresql+psycopg://", "postgresql://", 1), connect_timeout=5) as db:
            db.execute("SELECT 1")
    except psycopg.Error as exc:
        return type(exc).__name__
    return None


def wait_for_database(uri: str, deadline_s: float) -> None:
    """Poll until the database answers; past the deadline, exit with one line saying what to check."""
    start = time.monotonic()
    while (problem := database_answers(uri)) is not None:
        if time.monotonic() - start > deadline_s:
            host = os.environ.get("MLFLOW_DB_HOST", "postgres")
            fail(f"the database at {host} did not answer within {deadline_s:.0f} s ({problem}); check that the "
                 "postgres service runs and that MLFLOW_DB_PASSWORD_FILE holds its password")
        time.sleep(2)


def auth_config(uri: str, folder: str) -> str | None:
    """A private basic-auth config file (mode 600) when MLFLOW_ADMIN_PASSWORD_FILE is set; its path."""
    if not (os.environ.get("MLFLOW_ADMIN_PASSWORD_FILE") or os.environ.get("MLFLOW_ADMIN_PASSWORD")):
        return None
    password = secret("MLFLOW_ADMIN_PASSWORD") or ""
    os.environ["MLFLOW_FLASK_SERVER_SECRET_KEY"] = secret("MLFLOW_SECRET_KEY") or ""

    def escaped(value: str) -> str:  # configparser's interpolation reads % specially
        return value.replace("%", "%%")

    # The admin's name and password go through MLflow's own variables: a config file would strip a password's
    # leading and trailing spaces.
    os.environ["MLFLOW_AUTH_ADMIN_USERNAME"] = os.environ.get("MLFLOW_ADMIN_USERNAME", "admin")
    os.environ["MLFLOW_AUTH_ADMIN_PASSWORD"] = password
    lines = [
        "[mlflow]",
        f"default_permission = {os.environ.get('MLFLOW_DEFAULT_PERMISSION', 'READ')}",
        f"database_uri = {escaped(uri)}",
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth",
    ]
    path = os.path.join(folder, "basic_auth.ini")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def tls_options() -> list[str]:
    cert, key = os.environ.get("MLFLOW_TLS_CERT_FILE"), os.environ.get("MLFLOW_TLS_KEY_FILE")
    if not cert and not key:
        return []
    for name, path in (("MLFLOW_TLS_CERT_FILE", cert), ("MLFLOW_TLS_KEY_FILE", key)):
        if not path or not os.access(path, os.R_OK):
            fail(f"{name} must name a readable file (both the certificate and its key are needed for TLS)")
    return ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]


def check() -> int:
    """The health check: the server's /health over HTTP or HTTPS, and the database."""
    port = os.environ.get("MLFLOW_PORT", "5000")
    scheme = "https" if os.environ.get("MLFLOW_TLS_CERT_FILE") else "http"
    context = ssl._create_unverified_context() if scheme == "https" else None  # loopback, our own certificate
    try:
        urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/health", timeout=4, context=context)
    except OSError as exc:
        print(f"server: {type(exc).__name__}", file=sys.stderr)
        return 1
    problem = database_answers(backend_store_uri())
    if problem is not None:
        print(f"database: {problem}", file=sys.stderr)
        return 1
    return 0


def serve(arguments: list[str]) -> None:
    uri = backend_store_uri()
    wait_for_database(uri, float(os.environ.get("MLFLOW_DB_WAIT_S", "120")))
    os.environ["MLFLOW_BACKEND_STORE_URI"] = uri
    folder = tempfile.mkdtemp(prefix="mlflow-config-")
    config = auth_config(uri, folder)
    app = []
    if config is not None:
        os.environ["MLFLOW_AUTH_CONFIG_PATH"] = config
        app = ["--app-name", os.environ.get("MLFLOW_AUTH_APP", "basic-auth")]
    uvicorn = shlex.split(os.environ.get("MLFLOW_UVICORN_OPTS", "")) + tls_options()
    if not any(option.startswith("--timeout-graceful-shutdown") for option in uvicorn):
        # A stop (SIGTERM) waits this long for open requests, not for every idle keep-alive connection to close.
        uvicorn += ["--timeout-graceful-shutdown", "5"]
    os.environ["MLFLOW_UVICORN_OPTS"] = shlex.join(uvicorn)
    command = ["mlflow", "server", *app, "--host", os.environ.get("MLFLOW_HOST", "0.0.0.0"),
               "--port", os.environ.get("MLFLOW_PORT", "5000"), *arguments]
    os.execvp(command[0], command)


if __name__ == "__main__":
    if sys.argv[1:] == ["--check"]:
        sys.exit(check())
    serve(sys.argv[1:])
