"""A loopback HTTP server, in a thread, standing in for the Hugging Face hub and for a plain upstream URL.

It serves the part of the hub's HTTP API that huggingface_hub 2.4 uses to download a model repository's files, as
read from its source (hf_api.py, file_download.py, utils/_http.py):

- `GET /api/models/{org}/{name}/revision/{rev}` (HfApi.model_info): `{"id", "sha", "siblings"}`; the commit a
  branch, tag or commit resolves to.
- `GET /api/models/{org}/{name}/tree/{rev}?recursive=..&expand=..` (HfApi.list_repo_tree): one page (no `Link`
  header) of `{"type": "file", "path", "size", "oid"}`, plus `"lfs": {"oid": sha256, "size", "pointerSize"}` for
  LFS files.
- `HEAD` and `GET /{org}/{name}/resolve/{rev}/{path}` (get_hf_file_metadata, http_get): `X-Repo-Commit`, `ETag`
  (the sha256 for LFS files, the git blob id otherwise), `Content-Length`; no `X-Xet-Hash`, so no Xet transfer.
- Errors as the hub sends them: 404 with `X-Error-Code` `RepoNotFound`, `RevisionNotFound` or `EntryNotFound`.

And `GET /files/{name}`: a plain upstream file, optionally announcing a longer Content-Length than it sends (a
truncated body), answering with an HTTP error, redirecting (`location`) or trickling its body one byte every
`trickle_s` seconds. Every request is recorded as `(method, path)`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class Commit:
    files: dict[str, bytes]
    lfs: set[str]
    #: Files whose served bytes differ from what the listing says (same length): a download corrupted in transit.
    corrupt: set[str] = field(default_factory=set)


@dataclass
class UrlFile:
    body: bytes
    #: Content-Length sent instead of len(body) (a truncated download when larger).
    declared_length: int | None = None
    status: int = 200
    #: with a 3xx status: where to
    location: str | None = None
    #: seconds between bytes of the body (a slow or stalling server); 0: all at once
    trickle_s: float = 0.0


class LoopbackHub:
    def __init__(self) -> None:
        self.repos: dict[str, dict[str, Commit]] = {}
        self.refs: dict[str, dict[str, str]] = {}
        self.urls: dict[str, UrlFile] = {}
        self.requests: list[tuple[str, str]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.02},
                                        name="loopback-hub", daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def add_commit(self, repo: str, files: dict[str, bytes], lfs: set[str] | None = None,
                   refs: tuple[str, ...] = ("main",), corrupt: set[str] | None = None) -> str:
        """A commit of `repo` holding `files`; each of `refs` (branches, tags) then points at it. Returns its sha."""
        digest = hashlib.sha1(repo.encode(), usedforsecurity=False)
        for path in sorted(files):
            digest.update(path.encode() + b"\0" + files[path])
        digest.update(str(len(self.repos.get(repo, {}))).encode())
        sha = digest.hexdigest()
        self.repos.setdefault(repo, {})[sha] = Commit(dict(files), set(lfs or ()), set(corrupt or ()))
        for ref in refs:
            self.refs.setdefault(repo, {})[ref] = sha
        return sha

    def add_url(self, name: str, body: bytes, declared_length: int | None = None, status: int = 200,
                location: str | None = None, trickle_s: float = 0.0) -> str:
        self.urls[name] = UrlFile(body, declared_length, status, location, trickle_s)
        return f"{self.endpoint}/files/{name}"

    def requested(self, method: str, fragment: str) -> list[str]:
        return [path for m, path in self.requests if m == method and fragment in path]

    def __enter__(self) -> LoopbackHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def resolve(self, repo: str, revision: str) -> str | None:
        if revision in self.repos.get(repo, {}):
            return revision
        return self.refs.get(repo, {}).get(revision)


def _handler(hub: LoopbackHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:
            self._route(body=False)

        def do_GET(self) -> None:
            self._route(body=True)

        def _route(self, body: bool) -> None:
            path = urlsplit(self.path).path
            hub.requests.append((self.command, self.path))
            parts = [unquote(p) for p in path.strip("/").split("/")]
            if parts[:1] == ["files"] and len(parts) == 2:
                return self._url_file(parts[1], body)
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
                repo, kind, revision = f"{parts[2]}/{parts[3]}", parts[4], parts[5]
                commit = self._commit(repo, revision)
                if commit is None:
                    return None
                return self._model_info(repo, commit) if kind == "revision" else self._tree(repo, commit)
            if len(parts) >= 5 and parts[2] == "resolve":
                repo, revision, file = f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:])
                commit = self._commit(repo, revision)
                if commit is None:
                    return None
                return self._resolve(repo, commit, file, body)
            return self._send(404, b"not found", {"X-Error-Code": "EntryNotFound"}, body)

        def _commit(self, repo: str, revision: str) -> str | None:
            if repo not in hub.repos:
                self._send(404, b'{"error": "Repository not found"}', {"X-Error-Code": "RepoNotFound"},
                           self.command == "GET")
                return None
            commit = hub.resolve(repo, revision)
            if commit is None:
                self._send(404, b'{"error": "Invalid rev id"}', {"X-Error-Code": "RevisionNotFound"},
                           self.command == "GET")
            return commit

        def _model_info(self, repo: str, commit: str) -> None:
            files = hub.repos[repo][commit].files
            info = {"id": repo, "modelId": repo, "sha": commit, "private": False,
                    "siblings": [{"rfilename": p} for p in sorted(files)]}
            self._json(info)

        def _tree(self, repo: str, commit: str) -> None:
            state = hub.repos[repo][commit]
            entries = []
            for path, data in sorted(state.files.items()):
                entry: dict[str, object] = {"type": "file", "path": path, "size": len(data), "oid": git_blob_id(data)}
                if path in state.lfs:
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                entries.append(entry)
            self._json(entries)

        def _resolve(self, repo: str, commit: str, file: str, body: bool) -> None:
            state = hub.repos[repo][commit]
            if file not in state.files:
                return self._send(404, b"Entry not found", {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit},
                                  body)
            data = state.files[file]
            etag = hashlib.sha256(data).hexdigest() if file in state.lfs else git_blob_id(data)
            if file in state.corrupt:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            return self._send(200, data, {"X-Repo-Commit": commit, "ETag": f'"{etag}"',
                                          "Content-Type": "application/octet-stream"}, body)

        def _url_file(self, name: str, body: bool) -> None:
            entry = hub.urls.get(name)
            if entry is None:
                return self._send(404, b"no such file", {}, body)
            if entry.location is not None:
                return self._send(entry.status, b"moved", {"Location": entry.location}, body)
            if entry.status != 200:
                return self._send(entry.status, b"error", {}, body)
            length = entry.declared_length if entry.declared_length is not None else len(entry.body)
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(length))
            self.end_headers()
            if body and entry.trickle_s:
                self._trickle(entry)
            elif body:
                self.wfile.write(entry.body)
            if length != len(entry.body):
                self.close_connection = True  # the body ends early: hang up, as a broken transfer does
            return None

        def _trickle(self, entry: UrlFile) -> None:
            try:
                for byte in entry.body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    time.sleep(entry.trickle_s)
            except OSError:  # the client gave up
                self.close_connection = True

        def _json(self, payload: object) -> None:
            self._send(200, json.dumps(payload).encode(), {"Content-Type": "application/json"}, self.command == "GET")

        def _send(self, status: int, data: bytes, headers: dict[str, str], body: bool) -> None:
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

    return Handler
