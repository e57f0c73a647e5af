"""What a failed tracking call means: the server is gone (go on with the offline bundle), the disk is full (stop
with a clear message), or something else (a bug or a misconfigured store: reported as such, never hidden).

Only connection failures count as "the server is gone": refused or reset connections, timeouts, names that do not
resolve, HTTP 5xx answers, and a SQLite file busy with another writer. A programming error the server reports (a
4xx answer, an invalid parameter) is not a reason to hide results in a bundle.
"""

from __future__ import annotations

import errno
import re
import sqlite3

import requests
from mlflow.exceptions import MlflowException, RestException

from medprobe.errors import DiskFullError

#: What MLflow's REST client writes into the MlflowException it raises when a request never got an answer.
_CONNECTION_TEXT = re.compile(
    r"Max retries exceeded|Connection refused|Connection reset|Connection aborted|timed out|Read timed out|"
    r"Name or service not known|Temporary failure in name resolution|Failed to establish a new connection|"
    r"RemoteDisconnected|too many 5\d\d error responses|database is locked",
    re.IGNORECASE,
)
_DISK_FULL_TEXT = re.compile(r"No space left on device|database or disk is full", re.IGNORECASE)


def chain(exc: BaseException) -> list[BaseException]:
    """`exc` and the exceptions it was raised from or during."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_connection_failure(exc: BaseException) -> bool:
    for item in chain(exc):
        if isinstance(item, requests.ConnectionError | requests.Timeout | ConnectionError | TimeoutError):
            return True
        if isinstance(item, RestException) and _http_status(item) >= 500:
            return True
        if isinstance(item, MlflowException | sqlite3.OperationalError | OSError) and _CONNECTION_TEXT.search(
            str(item)
        ):
            return True
    return False


def disk_full(exc: BaseException, where: str) -> DiskFullError | None:
    """A DiskFullError naming `where` when `exc` (or what caused it) is ENOSPC or a full SQLite database."""
    for item in chain(exc):
        if (isinstance(item, OSError) and item.errno == errno.ENOSPC) or _DISK_FULL_TEXT.search(str(item)):
            return DiskFullError(f"{where}: no space left on the device; free space there (or point the tracking "
                                 "URI elsewhere) and re-run: finished work is kept")
    return None


def store_location(uri: str) -> str:
    """Where a store's writes go, for a message shown at the site: a SQLite file's folder, else the URI without
    credentials."""
    from medprobe.tracking.sqlite_schema import sqlite_path
    from medprobe.tracking.uri import redacted_uri

    path = sqlite_path(uri)
    return f"tracking store folder {path.parent}" if path is not None else f"tracking store {redacted_uri(uri)}"


def _http_status(exc: RestException) -> int:
    try:
        return int(exc.get_http_status_code())
    except (TypeError, ValueError):
        return 0


#: What a tracking server answers when it refuses a user: a login or permission problem to fix, not a bug.
_REFUSALS = {"UNAUTHENTICATED", "PERMISSION_DENIED"}
#: MLflow's client says so in text when the answer is not MLflow's JSON error (basic auth's plain 401/403 bodies).
_REFUSED_TEXT = re.compile(r"failed with error code 40[13] ")


def server_refusal(exc: BaseException) -> str | None:
    """One line for a tracking server that refused a call (HTTP 401/403: wrong credentials, or a site writing what
    it may not), else None. Printed at the site only."""
    for item in chain(exc):
        refused = isinstance(item, RestException) and (item.error_code in _REFUSALS or _http_status(item) in (401, 403))
        if refused or (isinstance(item, MlflowException) and _REFUSED_TEXT.search(str(item))):
            message = str(item).splitlines()[0][:300]
            return (f"the tracking server refused: {message}; check MLFLOW_TRACKING_USERNAME/PASSWORD, and that the "
                    "site's account is named after the spec's site and may write the experiment")
    return None
