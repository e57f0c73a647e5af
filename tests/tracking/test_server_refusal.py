"""A tracking server that refuses a call (HTTP 401/403) is a login or permission problem to fix: one line, exit 2,
never "internal error (a bug)" with a traceback. The errors are MLflow's own classes, as its client raises them
(seen against the real server in test_auth_server.py and docker/smoke.sh)."""

from __future__ import annotations

import pytest
from mlflow.exceptions import MlflowException, RestException

from medprobe.tracking.failures import server_refusal


@pytest.mark.parametrize("error", [
    RestException({"error_code": "PERMISSION_DENIED", "message": "medprobe site guard: the run belongs to site-a"}),
    RestException({"error_code": "UNAUTHENTICATED", "message": "You are not authenticated"}),
    MlflowException("API request to endpoint /api/2.0/mlflow/runs/delete failed with error code 403 != 200. "
                    "Response body: 'Permission denied'"),
])
def test_a_refusal_is_one_line_saying_what_to_check(error: Exception) -> None:
    try:
        raise RuntimeError("while logging") from error
    except RuntimeError as wrapped:
        message = server_refusal(wrapped)
    assert message is not None and message.startswith("the tracking server refused: ") and "\n" not in message
    assert "MLFLOW_TRACKING_USERNAME" in message


@pytest.mark.parametrize("error", [RestException({"error_code": "INTERNAL_ERROR", "message": "boom"}),
                                   MlflowException("failed with error code 500 != 200"), ValueError("x")])
def test_other_failures_are_not_refusals(error: Exception) -> None:
    assert server_refusal(error) is None
