"""MEDPROBE_TRACKING_WAIT_S: a job started beside its tracking server (compose) waits for it, with a deadline."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest

from medprobe.errors import TrackingError
from medprobe.tracking.recorder import WAIT_ENVIRONMENT, _connect
from tests.tracking.processes import free_port


class _EmptyTrackingServer(http.server.BaseHTTPRequestHandler):
    """Answers MLflow's experiment search with no experiments: enough for a client to count as connected."""

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = json.dumps({"experiments": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        return None


@pytest.fixture
def late_server() -> Iterator[tuple[str, float]]:
    """A server on a free port that starts listening 1.5 s from now; its URI and start time."""
    port, delay = free_port(), 1.5
    servers: list[http.server.HTTPServer] = []

    def start() -> None:
        time.sleep(delay)
        server = http.server.HTTPServer(("127.0.0.1", port), _EmptyTrackingServer)
        servers.append(server)
        server.serve_forever(poll_interval=0.1)

    threading.Thread(target=start, daemon=True).start()
    yield f"http://127.0.0.1:{port}", time.monotonic() + delay
    for server in servers:
        server.shutdown()


def test_a_job_waits_for_a_server_that_is_still_starting(late_server: tuple[str, float],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    uri, listening_from = late_server
    monkeypatch.setenv(WAIT_ENVIRONMENT, "30")
    store, reason = _connect(uri)
    assert store is not None and reason is None
    assert time.monotonic() >= listening_from


def test_without_a_wait_an_absent_server_is_offline_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WAIT_ENVIRONMENT, raising=False)
    start = time.monotonic()
    store, reason = _connect(f"http://127.0.0.1:{free_port()}")
    assert store is None and reason is not None and "unreachable" in reason
    assert time.monotonic() - start < 15


def test_the_wait_ends_at_its_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WAIT_ENVIRONMENT, "1.5")
    start = time.monotonic()
    store, _ = _connect(f"http://127.0.0.1:{free_port()}")
    assert store is None and 1.5 <= time.monotonic() - start < 15


def test_a_wait_that_is_not_a_number_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WAIT_ENVIRONMENT, "five minutes")
    with pytest.raises(TrackingError, match="MEDPROBE_TRACKING_WAIT_S must be a number of seconds"):
        _connect("http://127.0.0.1:1")
