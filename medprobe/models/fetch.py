"""Downloading a model's upstream files on a connected machine: the only code in medprobe that downloads anything.

Audit note: this module is medprobe's one user of `urllib.request`, and its one caller of huggingface_hub's download
functions that may go online (elsewhere they only look in the local cache: `local_files_only=True`); only `medprobe
models fetch` calls it. Loading weights, `medprobe models verify` and every job read local files only.
tests/models/test_fetch.py checks this over the whole package.

`fetch_weights(name, to)` downloads into a hidden staging folder next to the destination `to/<name>/`, checks every
file (hub files against the hub's own checksums, the checkpoint against the card's sha256), and only then moves the
files into place and writes the lock (`lockfile.py`) last: a fetch that failed or was killed leaves no folder that
looks complete, and a refused fetch leaves the destination as it was. The hub is reached through huggingface_hub at
$HF_ENDPOINT (read at each call; default https://huggingface.co) with the user's hub login for gated repositories;
files are neither taken from nor added to the huggingface hub cache. A plain URL is streamed with urllib (honouring
the usual proxy variables)."""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from medprobe.errors import DiskFullError, WeightsError
from medprobe.models.lockfile import (
    LOCK_NAME,
    LockedFile,
    WeightsLock,
    describe_source,
    hash_files,
    read_lock,
    verify_folder,
    write_lock,
)

if TYPE_CHECKING:
    from medprobe.models.cards import ModelCard

#: `hf:<org>/<name>`: any hub model repository, without a zoo card (the whole snapshot; weights: the folder).
HUB_PREFIX = "hf:"
HUB_ENDPOINT_ENV = "HF_ENDPOINT"
DEFAULT_HUB_ENDPOINT = "https://huggingface.co"
DEFAULT_REVISION = "main"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*")
#: A card's checkpoint_file that is one file name (not a description such as "folder: config.json, ...").
_FILE_NAME = re.compile(r"[\w.+-]+\.\w+")
_WEIGHTS_SUFFIXES = {".safetensors", ".pth", ".pt", ".bin", ".ckpt"}
_CHUNK = 1 << 20
#: The longest a single network wait may block (connect, or one read).
_URL_TIMEOUT_S = 60
#: The whole fetch's default deadline: a multi-gigabyte checkpoint at a few MB/s.
DEFAULT_TIMEOUT_S = 3 * 3600


@dataclass(frozen=True)
class HubSource:
    repo: str
    revision: str
    #: File names (or glob patterns) in the repository; None: the whole snapshot.
    files: tuple[str, ...] | None


@dataclass(frozen=True)
class UrlSource:
    url: str
    #: The name the file is saved as.
    file: str


@dataclass(frozen=True)
class FetchPlan:
    model: str
    #: The files land in `<to>/<folder_name>/`: the zoo name, or `<org>--<name>` for `hf:<org>/<name>`.
    folder_name: str
    source: HubSource | UrlSource
    card: ModelCard | None


@dataclass(frozen=True)
class FetchResult:
    folder: Path
    lock: WeightsLock
    #: False when the folder already held this model from this source and verified: nothing was downloaded.
    downloaded: bool
    #: The checkpoint file the card's sha256 is about (the one file of a URL source), when fetched.
    checkpoint: LockedFile | None
    card_sha256: str | None

    @property
    def weights(self) -> Path:
        """What a spec's `weights:` should name: the checkpoint file of a single-file model, else the folder."""
        return self.folder / self.lock.weights


def plan_fetch(name: str, revision: str | None = None) -> FetchPlan:
    """Where `name` (a zoo model with a `fetch:` section in its card, or `hf:<org>/<name>`) is downloaded from."""
    if name.startswith(HUB_PREFIX):
        repo = name[len(HUB_PREFIX):]
        _check_repo_id(repo, name)
        return FetchPlan(model=name, folder_name=repo.replace("/", "--"),
                         source=HubSource(repo=repo, revision=revision or DEFAULT_REVISION, files=None), card=None)
    from medprobe.models import model_card  # the registry: unknown names are an error listing the zoo

    card = model_card(name)
    return FetchPlan(model=name, folder_name=name, source=source_from_card(card, revision), card=card)


def source_from_card(card: ModelCard, revision: str | None = None) -> HubSource | UrlSource:
    spec: Any = card.fetch
    where = f"model '{card.name}' (its card's fetch: section)"
    if not spec and not card.checkpoint_file:
        raise WeightsError(f"model '{card.name}' has no weights to fetch ({card.source})")
    if not spec:
        raise WeightsError(
            f"model '{card.name}' has no fetch: section in its card, so medprobe cannot download its weights (gated, "
            f"or none published); get them from {card.source}, or fetch a hub repository directly as hf:<org>/<name>"
        )
    if not isinstance(spec, dict) or ("hub" in spec) == ("url" in spec):
        raise WeightsError(f"{where}: needs exactly one of hub: <org>/<name> or url: https://..., found {spec!r}")
    if "hub" in spec:
        _no_other_keys(spec, {"hub", "revision", "files"}, where)
        repo = str(spec["hub"])
        _check_repo_id(repo, where)
        files = spec.get("files")
        if files is not None and (not isinstance(files, list) or not files
                                  or not all(isinstance(f, str) and f for f in files)):
            raise WeightsError(f"{where}: files: must be a list of file names in the repository, found {files!r}")
        return HubSource(repo=repo, revision=str(revision or spec.get("revision") or DEFAULT_REVISION),
                         files=tuple(files) if files else None)
    _no_other_keys(spec, {"url", "file"}, where)
    if revision:
        raise WeightsError(f"--revision applies to hub repositories; {where} downloads one file from a URL")
    url = str(spec["url"])
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        raise WeightsError(f"{where}: url: must be an http(s) URL, found {url!r}")
    file = str(spec.get("file") or card.checkpoint_file or PurePosixPath(urllib.parse.urlsplit(url).path).name)
    if not file or PurePosixPath(file).name != file or file in (".", ".."):
        raise WeightsError(f"{where}: file: must be a plain file name to save the download as, found {file!r}")
    return UrlSource(url=url, file=file)


def fetch_weights(name: str, to: Path, revision: str | None = None, force: bool = False,
                  timeout_s: float | None = None, redirect_hosts: Collection[str] = ()) -> FetchResult:
    """Download `name`'s upstream files into `to/<name>/` and record them in a lock beside them.

    The whole fetch must end within `timeout_s` (None: `DEFAULT_TIMEOUT_S`), since a server that trickles bytes
    would otherwise never end it; a plain URL is followed through redirects within its own origin (scheme, host,
    port) and to `redirect_hosts` only.

    Refused, leaving the folder as it was: a folder whose lock records another model or source, or whose files
    differ from what is fetched now (unless `force`), a folder of files without a lock (unless `force`), a
    checkpoint that does not match the card's sha256, and any file that does not match the hub's checksum.
    """
    plan = plan_fetch(name, revision)
    deadline = _Deadline(timeout_s or DEFAULT_TIMEOUT_S)
    try:
        to.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WeightsError(f"--to {to}: cannot create the folder ({exc.strerror or exc})") from None
    folder = to / plan.folder_name
    existing = _existing_lock(folder, force)

    if isinstance(plan.source, HubSource):
        endpoint = (os.environ.get(HUB_ENDPOINT_ENV) or DEFAULT_HUB_ENDPOINT).rstrip("/")
        commit, listing = _hub_listing(plan.source, endpoint)
        wanted = _select(plan.source, listing, commit)
        source = {"hub": plan.source.repo, "revision": plan.source.revision, "commit": commit, "endpoint": endpoint}
    else:
        source = {"url": plan.source.url}
    origin = WeightsLock.origin_of(plan.model, source)

    if existing is not None and not force:
        if existing.origin() != origin:
            raise WeightsError(
                f"{folder} already holds {existing.model} from {existing.describe_source()} (its {LOCK_NAME}); "
                f"not replacing it with {plan.model} from {describe_source(source)}: choose another --to, or --force"
            )
        if verify_folder(folder).passed:
            _check_card(plan, _checkpoint(plan, existing.files), str(folder))
            return _result(plan, folder, existing, downloaded=False)

    staging = Path(tempfile.mkdtemp(prefix=f".{plan.folder_name}.fetching-", dir=to))
    try:
        if isinstance(plan.source, HubSource):
            _download_hub(plan.source.repo, commit, wanted, staging, endpoint, deadline)
            files = hash_files(staging, wanted)
            _check_against_hub(files, listing, staging, f"hub {plan.source.repo} (commit {commit})")
        else:
            download_url(plan.source.url, staging / plan.source.file, deadline, redirect_hosts)
            files = hash_files(staging, [plan.source.file])
        lock = WeightsLock(model=plan.model, source=source, weights=_weights_entry(plan, files), files=files,
                           medprobe_version=_version(), fetched_at=_utc_now())
        _check_card(plan, _checkpoint(plan, files), describe_source(source))
        if existing is not None and not force and existing.content() != lock.content():
            changed = sorted(p for p in existing.content().keys() | lock.content().keys()
                             if existing.content().get(p) != lock.content().get(p))
            raise WeightsError(
                f"{folder}: what {describe_source(source)} serves now differs from its lock ({', '.join(changed)}); "
                "nothing was replaced: keep the folder, or --force to replace it with the new files"
            )
        _install(staging, folder, lock, existing)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return _result(plan, folder, lock, downloaded=True)


class _Deadline:
    """The end of the whole fetch: each network wait is bounded by what is left of it."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._end = time.monotonic() + seconds

    def wait_s(self) -> float:
        """How long the next network operation may block (at most `_URL_TIMEOUT_S`)."""
        return max(0.01, min(_URL_TIMEOUT_S, self._end - time.monotonic()))

    def check(self, what: str) -> None:
        if time.monotonic() > self._end:
            raise WeightsError(f"{what}: not finished within --timeout {self.seconds:g} s; nothing was kept (a "
                               "slow or stalled server: fetch again, or give a longer --timeout)")


class _RedirectGuard(urllib.request.HTTPRedirectHandler):
    """Follows a redirect within the URL's own origin, or to a host the user allowed; refuses any other."""

    def __init__(self, allowed_hosts: Collection[str]) -> None:
        self.allowed_hosts = {host.lower() for host in allowed_hosts}

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> urllib.request.Request | None:
        host = urllib.parse.urlsplit(newurl).hostname or ""
        if _origin(newurl) != _origin(req.full_url) and host not in self.allowed_hosts:
            scheme, _, port = _origin(newurl)
            raise WeightsError(f"{req.full_url}: redirected (HTTP {code}) to another origin, {scheme}://{host}:{port}; "
                               f"refused: give --allow-redirect-host {host} to follow it")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def download_url(url: str, target: Path, deadline: _Deadline | None = None,
                 redirect_hosts: Collection[str] = ()) -> None:
    """Stream `url` to `target` through `<target>.part`, renamed into place once complete and checked.

    An HTTP error, a failed connection, a redirect to another origin than `url`'s or `redirect_hosts`, a body
    shorter or longer than its Content-Length, or a download still running at `deadline` is an error naming the
    URL; the partial file is removed, so a partial download never carries the final name.
    """
    from medprobe import __version__

    deadline = deadline or _Deadline(DEFAULT_TIMEOUT_S)
    partial = target.with_name(target.name + ".part")
    request = urllib.request.Request(url, headers={"User-Agent": f"medprobe/{__version__}"})
    opener = urllib.request.build_opener(_RedirectGuard(redirect_hosts))
    received = 0
    declared: int | None = None
    complete = False
    try:
        with opener.open(request, timeout=deadline.wait_s()) as response, partial.open("wb") as out:
            length = response.headers.get("Content-Length")
            declared = int(length) if length is not None and length.strip().isdigit() else None
            # read1: whatever has arrived, so a trickling server meets the deadline between reads
            while chunk := response.read1(_CHUNK):
                out.write(chunk)
                received += len(chunk)
                deadline.check(f"{url} (after {received} bytes)")
            out.flush()
            os.fsync(out.fileno())
        if declared is not None and received != declared:
            raise WeightsError(f"{url}: truncated download: received {received} of the {declared} bytes its "
                               "Content-Length announced; nothing was kept, fetch again")
        os.replace(partial, target)
        complete = True
    except urllib.error.HTTPError as exc:
        raise WeightsError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise WeightsError(f"{url}: cannot connect ({exc.reason})") from None
    except (http.client.HTTPException, OSError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
            raise DiskFullError(f"{target.parent}: no space left on the device while downloading {url} (after "
                                f"{received} of {declared or '?'} bytes); nothing half-written was kept") from None
        raise WeightsError(f"{url}: download failed after {received} bytes ({type(exc).__name__}: {exc})") from None
    finally:
        if not complete:
            partial.unlink(missing_ok=True)


# --- the hub ---------------------------------------------------------------------------------------------------


def _hub_listing(source: HubSource, endpoint: str) -> tuple[str, dict[str, Any]]:
    """The commit `source.revision` resolves to now, and the repository's files at that commit (path → RepoFile)."""
    api = _hub_api(endpoint)
    from huggingface_hub.hf_api import RepoFile

    with _hub_errors(f"hub repository {source.repo} at revision {source.revision}", endpoint):
        commit = api.model_info(source.repo, revision=source.revision).sha
        if not commit:
            raise WeightsError(f"{endpoint}: the hub did not report the commit of {source.repo} at {source.revision}")
        listing = {entry.path: entry for entry in api.list_repo_tree(source.repo, revision=commit, recursive=True)
                   if isinstance(entry, RepoFile)}
    return commit, listing


def _select(source: HubSource, listing: dict[str, Any], commit: str) -> list[str]:
    if source.files is None:
        return sorted(listing)
    chosen: list[str] = []
    for pattern in source.files:
        matches = sorted(path for path in listing if path == pattern or fnmatchcase(path, pattern))
        if not matches:
            shown = ", ".join(sorted(listing)[:20]) or "no files"
            raise WeightsError(f"hub repository {source.repo} at {source.revision} (commit {commit}) has no file "
                               f"{pattern!r}; it has: {shown}")
        chosen += [m for m in matches if m not in chosen]
    return chosen


def _download_hub(repo: str, commit: str, paths: list[str], staging: Path, endpoint: str,
                  deadline: _Deadline) -> None:
    """Each file through huggingface_hub, which follows the hub's own redirects (to its CDN); the deadline is
    checked between files, since huggingface_hub bounds only each network wait."""
    from huggingface_hub import hf_hub_download

    for path in paths:
        deadline.check(f"hub repository {repo} (commit {commit}), before {path}")
        with _hub_errors(f"{path} of hub repository {repo} (commit {commit})", endpoint):
            # Pinned to the resolved commit; the cache folder is private to this fetch (the user's is not used).
            hf_hub_download(repo, path, revision=commit, local_dir=staging, cache_dir=staging / ".hf-cache",
                            endpoint=endpoint, library_name="medprobe", library_version=_version())


def _check_against_hub(files: tuple[LockedFile, ...], listing: dict[str, Any], staging: Path, where: str) -> None:
    """Each file as the hub lists it: the LFS sha256 for large files, the git blob id for the others."""
    for entry in files:
        remote = listing[entry.path]
        lfs = getattr(remote, "lfs", None)
        if lfs is not None:
            kind, expected, actual = "sha256", lfs.sha256, entry.sha256
        elif getattr(remote, "blob_id", None):
            kind, expected, actual = "git blob id", remote.blob_id, _git_blob_id(staging / entry.path)
        else:
            continue
        if expected != actual or (remote.size is not None and remote.size != entry.size):
            raise WeightsError(f"{entry.path} from {where}: {kind} {actual[:12]}… ({entry.size} bytes) is not the "
                               f"hub's {expected[:12]}… ({remote.size} bytes): a corrupt download; fetch again")


def _git_blob_id(path: Path) -> str:
    digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _hub_api(endpoint: str) -> Any:
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise WeightsError("fetching from the hub needs the huggingface_hub package (pip install huggingface_hub)") \
            from None
    return HfApi(endpoint=endpoint, library_name="medprobe", library_version=_version())


@contextmanager
def _hub_errors(what: str, endpoint: str) -> Iterator[None]:
    """huggingface_hub's errors as one-line WeightsErrors naming the repository, revision or file."""
    from huggingface_hub import errors as hub

    try:
        yield
    except WeightsError:
        raise
    except hub.GatedRepoError:
        raise WeightsError(f"{what}: a gated repository; accept its terms on its page at {endpoint}, then log in "
                           "(`hf auth login`, or set HF_TOKEN)") from None
    except hub.RepositoryNotFoundError:
        raise WeightsError(f"{what}: no such repository at {endpoint} (a private or gated one answers the same "
                           "without a login: `hf auth login`, or set HF_TOKEN)") from None
    except hub.RevisionNotFoundError:
        raise WeightsError(f"{what}: no such revision at {endpoint} (give a branch, tag or commit of the "
                           "repository with --revision)") from None
    except hub.LocalEntryNotFoundError as exc:
        raise WeightsError(f"{what}: cannot reach {endpoint} ({_first_line(exc)})") from None
    except hub.EntryNotFoundError:
        raise WeightsError(f"{what}: no such file at {endpoint}") from None
    except Exception as exc:  # noqa: BLE001 - requests, httpx or httpx2 errors, depending on huggingface_hub's version
        raise WeightsError(f"{what}: download from {endpoint} failed ({type(exc).__name__}: {_first_line(exc)})") \
            from None


# --- the lock, the card, the destination ---------------------------------------------------------------------------


def _existing_lock(folder: Path, force: bool) -> WeightsLock | None:
    if not folder.exists():
        return None
    if not folder.is_dir():
        raise WeightsError(f"{folder} exists and is not a folder; choose another --to")
    try:
        lock = read_lock(folder)
    except WeightsError as exc:
        if force:
            return None
        raise WeightsError(f"{exc}; not writing into {folder}: choose another --to, or --force") from None
    if lock is None and any(folder.iterdir()) and not force:
        raise WeightsError(f"{folder} holds files but no {LOCK_NAME}; not writing into it: choose another --to, or "
                           "--force to add the fetched files (replacing those of the same name)")
    return lock


def _install(staging: Path, folder: Path, lock: WeightsLock, existing: WeightsLock | None) -> None:
    """Move the checked files into place. The old lock goes first and the new one comes last, so the folder has no
    lock while its files change."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / LOCK_NAME).unlink(missing_ok=True)
        if existing is not None:
            new = lock.content()
            for old in existing.files:  # files an earlier fetch put here that this source does not have
                if old.path not in new:
                    (folder / old.path).unlink(missing_ok=True)
        for entry in lock.files:
            target = folder / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / entry.path, target)
        write_lock(folder, lock)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(f"{folder}: no space left on the device while moving the fetched files into place; "
                                "it holds no lock now: free space and fetch again") from None
        raise WeightsError(f"{folder}: could not move the fetched files into place ({exc}); it holds no lock now: "
                           "fetch again") from None


def _checkpoint(plan: FetchPlan, files: tuple[LockedFile, ...]) -> LockedFile | None:
    """The one file `weights:` names for a single-file model: a URL's file; the card's checkpoint_file when fetched;
    else, for a card whose checkpoint_file is a file name (a single-file model published under another name, as
    timm's model.safetensors), the one weights file fetched. None for a folder-layout model: `weights:` the folder."""
    if isinstance(plan.source, UrlSource):
        return files[0]
    name = plan.card.checkpoint_file if plan.card is not None else None
    if not name:
        return None
    named = next((f for f in files if f.path == name), None)
    if named is not None or not _FILE_NAME.fullmatch(name):
        return named
    weights = [f for f in files if PurePosixPath(f.path).suffix in _WEIGHTS_SUFFIXES]
    return weights[0] if len(weights) == 1 else None


def _weights_entry(plan: FetchPlan, files: tuple[LockedFile, ...]) -> str:
    checkpoint = _checkpoint(plan, files)
    return checkpoint.path if checkpoint is not None else "."


def _check_card(plan: FetchPlan, checkpoint: LockedFile | None, where: str) -> None:
    card = plan.card
    if card is None or not card.sha256 or checkpoint is None:
        return
    if checkpoint.sha256 != card.sha256.strip().lower():
        raise WeightsError(
            f"{checkpoint.path} from {where}: sha256 {checkpoint.sha256[:12]}… does not match the card's "
            f"{card.sha256[:12]}… for '{card.name}'; nothing was installed or changed (a different release, or the "
            "card's sha256 is wrong: check the card's fetch: revision and sha256)"
        )


def _result(plan: FetchPlan, folder: Path, lock: WeightsLock, downloaded: bool) -> FetchResult:
    return FetchResult(folder=folder, lock=lock, downloaded=downloaded, checkpoint=_checkpoint(plan, lock.files),
                       card_sha256=plan.card.sha256 if plan.card is not None else None)


def _check_repo_id(repo: str, where: str) -> None:
    if not _REPO_ID.fullmatch(repo):
        raise WeightsError(f"{where}: {repo!r} is not a hub repository id (<org>/<name>)")


def _no_other_keys(spec: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise WeightsError(f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)[:300]


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version() -> str:
    from medprobe import __version__

    return __version__
