"""`medprobe models fetch` and `models verify` against a loopback hub and upstream URL (tests/loopback_hub.py).

No test reaches beyond 127.0.0.1: every other connect is refused and recorded, and the test then fails. A fake card
for `dinov2_vits14` (a registered zoo model) in a temporary $MEDPROBE_MODEL_ZOO carries the fetch: section.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from medprobe import __version__
from medprobe.cli.main import main
from medprobe.models import cards
from medprobe.models.lockfile import LOCK_NAME
from tests.loopback_hub import LoopbackHub

ROOT = Path(__file__).resolve().parents[2]
MODEL = "dinov2_vits14"
CHECKPOINT = "dinov2_vits14_pretrain.pth"  # the real card's checkpoint_file
REPO = "facebook/dinov2-small"
WEIGHTS = bytes(range(256)) * 64 + b"weights"  # 16 kB
CONFIG = b'{"hidden_size": 384}\n'
README = b"# dinov2-small\n"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Refuse, and remember, any connect or name lookup that is not for this machine's loopback address."""
    blocked: list[Any] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def allowed(sock: socket.socket, address: Any) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return True
        if address[0] in ("127.0.0.1", "::1"):
            return True
        blocked.append(address)
        return False

    def connect(sock: socket.socket, address: Any) -> None:
        if not allowed(sock, address):
            raise ConnectionRefusedError(f"test: no network beyond 127.0.0.1 (tried {address})")
        real_connect(sock, address)

    def connect_ex(sock: socket.socket, address: Any) -> int:
        return real_connect_ex(sock, address) if allowed(sock, address) else 111

    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in ("127.0.0.1", "::1", "localhost", None):
            blocked.append(host)
            raise socket.gaierror(socket.EAI_NONAME, f"test: no name lookups beyond loopback (tried {host})")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield blocked
    assert not blocked, f"a test tried to reach the network: {blocked}"


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[LoopbackHub]:
    with LoopbackHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
        monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
        for proxy in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(proxy, raising=False)
        yield server


@pytest.fixture
def card(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Callable[..., None]]:
    """`card(fetch=..., sha256=...)` writes this test's dinov2_vits14 card (the shipped one, edited)."""
    zoo = tmp_path / "zoo"
    shipped = yaml.safe_load((ROOT / "model_zoo" / MODEL / "card.yaml").read_text(encoding="utf-8"))

    def write(**changes: Any) -> None:
        (zoo / MODEL).mkdir(parents=True, exist_ok=True)
        data = {**shipped, **changes}
        (zoo / MODEL / "card.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
        cards.load_card.cache_clear()

    monkeypatch.setenv(cards.ZOO_ENV, str(zoo))
    cards.load_card.cache_clear()
    yield write
    cards.load_card.cache_clear()


def fetch(*args: str) -> int:
    return main(["models", "fetch", *args])


def printed(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    captured = capsys.readouterr()
    return captured.out, captured.err


def line(out: str, key: str) -> str:
    match = re.search(rf"^{key}: (.+)$", out, re.MULTILINE)
    assert match, out
    return match.group(1)


def read_lock(folder: Path) -> dict[str, Any]:
    return json.loads((folder / LOCK_NAME).read_text(encoding="utf-8"))


def only_the_model_folder(to: Path, name: str = MODEL) -> None:
    """No staging folder, no partial file left beside the result."""
    assert sorted(p.name for p in to.iterdir()) == [name]
    assert not [p for p in (to / name).rglob("*") if p.name.endswith((".part", ".tmp", ".incomplete"))]
    assert not (to / name / ".cache").exists()


# --- fetch ------------------------------------------------------------------------------------------------------


def test_fetch_from_the_hub_records_the_commit_and_sha256s(hub, card, tmp_path: Path, capsys) -> None:
    commit = hub.add_commit(REPO, {"config.json": CONFIG, CHECKPOINT: WEIGHTS, "README.md": README}, lfs={CHECKPOINT})
    card(fetch={"hub": REPO, "revision": "main", "files": ["config.json", CHECKPOINT]})
    to = tmp_path / "weights"
    assert fetch(MODEL, "--to", str(to)) == 0
    out, _ = printed(capsys)
    folder = to / MODEL
    lock = read_lock(folder)
    assert lock["format"] == "medprobe-weights-lock/1" and lock["model"] == MODEL
    assert lock["source"] == {"hub": REPO, "revision": "main", "commit": commit, "endpoint": hub.endpoint}
    assert lock["medprobe_version"] == __version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lock["fetched_at"])
    assert lock["files"] == [{"path": "config.json", "size": len(CONFIG), "sha256": sha256(CONFIG)},
                             {"path": CHECKPOINT, "size": len(WEIGHTS), "sha256": sha256(WEIGHTS)}]
    assert lock["weights"] == CHECKPOINT
    assert (folder / CHECKPOINT).read_bytes() == WEIGHTS and not (folder / "README.md").exists()
    only_the_model_folder(to)
    # The card names its checkpoint_file in files: weights names that file, and its sha256 is offered for the card.
    assert line(out, "weights") == str((folder / CHECKPOINT).resolve())
    assert line(out, "sha256").startswith(f"{sha256(WEIGHTS)}  (the card records none")
    assert f"commit {commit}" in out
    # Files are downloaded at the commit the revision resolved to, not at the moving branch.
    assert hub.requested("GET", f"/api/models/{REPO}/revision/main")
    assert hub.requested("GET", f"/{REPO}/resolve/{commit}/{CHECKPOINT}")
    assert not hub.requested("GET", f"/{REPO}/resolve/main/")


def test_a_whole_snapshot_is_a_folder_and_revision_overrides_the_card(hub, card, tmp_path: Path, capsys) -> None:
    old = hub.add_commit(REPO, {"config.json": b"{}\n", "model.safetensors": b"v1" * 100}, lfs={"model.safetensors"},
                         refs=("v1.0",))
    hub.add_commit(REPO, {"config.json": CONFIG, "model.safetensors": WEIGHTS}, lfs={"model.safetensors"})
    # A folder-layout model (its card describes a folder, as rad_dino's); no files: the whole snapshot; revision main.
    card(fetch={"hub": REPO}, checkpoint_file="folder: config.json, model.safetensors (facebook/dinov2-small)")
    assert fetch(MODEL, "--to", str(tmp_path / "w"), "--revision", "v1.0") == 0
    out, _ = printed(capsys)
    lock = read_lock(tmp_path / "w" / MODEL)
    assert lock["source"]["revision"] == "v1.0" and lock["source"]["commit"] == old
    assert {f["path"]: f["sha256"] for f in lock["files"]} == {"config.json": sha256(b"{}\n"),
                                                                 "model.safetensors": sha256(b"v1" * 100)}
    assert lock["weights"] == "." and line(out, "weights") == str((tmp_path / "w" / MODEL).resolve())
    assert "sha256:" not in out.replace("  sha256 ", "")  # no checkpoint file: no line for the card


def test_a_single_file_model_published_under_another_name(hub, card, tmp_path: Path, capsys) -> None:
    """As the dinov3 cards: Meta's .pth named in checkpoint_file, timm's model.safetensors on the hub."""
    hub.add_commit(REPO, {"config.json": CONFIG, "model.safetensors": WEIGHTS}, lfs={"model.safetensors"})
    card(fetch={"hub": REPO, "files": ["model.safetensors", "config.json"]})
    assert fetch(MODEL, "--to", str(tmp_path)) == 0
    out, _ = printed(capsys)
    assert line(out, "weights") == str((tmp_path / MODEL / "model.safetensors").resolve())
    assert line(out, "sha256").startswith(sha256(WEIGHTS))


def test_any_hub_repository_as_hf_name(hub, tmp_path: Path, capsys) -> None:
    commit = hub.add_commit("microsoft/rad-dino", {"config.json": CONFIG, "model.safetensors": WEIGHTS},
                            lfs={"model.safetensors"})
    assert fetch("hf:microsoft/rad-dino", "--to", str(tmp_path)) == 0
    out, _ = printed(capsys)
    folder = tmp_path / "microsoft--rad-dino"
    lock = read_lock(folder)
    assert lock["model"] == "hf:microsoft/rad-dino" and lock["source"]["commit"] == commit
    assert line(out, "weights") == str(folder.resolve())
    assert main(["models", "verify", str(folder)]) == 0


def test_fetch_from_a_url_streams_one_file(hub, card, tmp_path: Path, capsys) -> None:
    url = hub.add_url("dinov2_vits14_pretrain.pth", WEIGHTS)
    card(fetch={"url": url})  # saved as the card's checkpoint_file
    assert fetch(MODEL, "--to", str(tmp_path / "w")) == 0
    out, _ = printed(capsys)
    folder = tmp_path / "w" / MODEL
    lock = read_lock(folder)
    assert lock["source"] == {"url": url}
    assert lock["files"] == [{"path": CHECKPOINT, "size": len(WEIGHTS), "sha256": sha256(WEIGHTS)}]
    assert line(out, "weights") == str((folder / CHECKPOINT).resolve())
    assert sha256(WEIGHTS) in line(out, "sha256") and "$MEDPROBE_MODEL_ZOO/dinov2_vits14/card.yaml" in out
    assert line(out, "licence") == "Apache-2.0"  # the card's, before anything is used
    only_the_model_folder(tmp_path / "w")


def test_the_cards_sha256_is_checked(hub, card, tmp_path: Path, capsys) -> None:
    url = hub.add_url("w.pth", WEIGHTS)
    card(fetch={"url": url}, sha256=sha256(WEIGHTS))
    assert fetch(MODEL, "--to", str(tmp_path / "ok")) == 0
    assert line(printed(capsys)[0], "sha256") == f"{sha256(WEIGHTS)}  (matches the card's)"

    card(fetch={"url": url}, sha256="ab" * 32)
    to = tmp_path / "refused"
    assert fetch(MODEL, "--to", str(to)) == 2
    _, err = printed(capsys)
    assert "does not match the card's abababababab" in err and url in err
    assert list(to.iterdir()) == []  # nothing installed, no staging left

    # A folder fetched before the card had this sha256 is not passed off as matching it; it stays as it was.
    assert fetch(MODEL, "--to", str(tmp_path / "ok")) == 2
    assert "does not match the card's" in printed(capsys)[1]
    assert (tmp_path / "ok" / MODEL / CHECKPOINT).read_bytes() == WEIGHTS
    assert main(["models", "verify", str(tmp_path / "ok" / MODEL)]) == 0


def test_a_truncated_download_is_an_error_and_leaves_no_lock(hub, card, tmp_path: Path, capsys) -> None:
    url = hub.add_url("short.pth", WEIGHTS[:1000], declared_length=len(WEIGHTS))
    card(fetch={"url": url})
    to = tmp_path / "w"
    assert fetch(MODEL, "--to", str(to)) == 2
    _, err = printed(capsys)
    assert f"{url}: truncated download: received 1000 of the {len(WEIGHTS)} bytes" in err
    assert list(to.iterdir()) == []


@pytest.mark.parametrize("status", [404, 500])
def test_an_http_error_names_the_url(hub, card, tmp_path: Path, capsys, status: int) -> None:
    url = hub.add_url("gone.pth", b"", status=status)
    card(fetch={"url": url})
    assert fetch(MODEL, "--to", str(tmp_path)) == 2
    assert f"{url}: HTTP {status}" in printed(capsys)[1]
    assert list(tmp_path.glob(f"*{MODEL}*")) == []


def test_a_hub_file_corrupted_in_transit_is_refused(hub, card, tmp_path: Path, capsys) -> None:
    hub.add_commit(REPO, {"config.json": CONFIG, CHECKPOINT: WEIGHTS}, lfs={CHECKPOINT}, corrupt={CHECKPOINT})
    card(fetch={"hub": REPO, "files": ["config.json", CHECKPOINT]})
    assert fetch(MODEL, "--to", str(tmp_path / "w")) == 2
    err = printed(capsys)[1]
    assert f"{CHECKPOINT} from hub {REPO}" in err and "a corrupt download" in err
    assert list((tmp_path / "w").iterdir()) == []


@pytest.mark.parametrize(("fetch_section", "args", "message"), [
    ({"hub": "facebook/absent"}, [], "no such repository at"),
    ({"hub": REPO}, ["--revision", "v9"], "at revision v9: no such revision"),
    ({"hub": REPO, "files": ["missing.bin"]}, [], "has no file 'missing.bin'; it has: config.json"),
    ({"url": "ftp://example.org/x.pth"}, [], "must be an http(s) URL"),
    ({"url": "http://127.0.0.1:9/x.pth"}, ["--revision", "v1"], "--revision applies to hub repositories"),
    ({"hub": REPO, "url": "http://127.0.0.1:9/x"}, [], "needs exactly one of hub:"),
    ({"hub": REPO, "branch": "main"}, [], "unknown key(s) branch"),
])
def test_bad_sources_are_clear_errors(hub, card, tmp_path: Path, capsys, fetch_section, args, message) -> None:
    hub.add_commit(REPO, {"config.json": CONFIG})
    card(fetch=fetch_section)
    assert fetch(MODEL, "--to", str(tmp_path / "w"), *args) == 2
    assert message in printed(capsys)[1]
    assert not (tmp_path / "w").exists() or list((tmp_path / "w").iterdir()) == []


def test_unknown_models_and_models_without_a_fetch_section(hub, card, tmp_path: Path, capsys) -> None:
    assert fetch("no_such_model", "--to", str(tmp_path)) == 2
    assert "unknown model 'no_such_model'; available:" in printed(capsys)[1]
    card(fetch={})  # a card without a fetch section
    assert fetch(MODEL, "--to", str(tmp_path)) == 2
    err = printed(capsys)[1]
    assert "model 'dinov2_vits14' has no fetch: section in its card" in err and "dl.fbaipublicfiles.com" in err
    assert fetch("hf:not a repo", "--to", str(tmp_path)) == 2
    assert "is not a hub repository id" in printed(capsys)[1]


def test_refetch_is_a_no_op_and_another_source_needs_force(hub, card, tmp_path: Path, capsys) -> None:
    url = hub.add_url("w.pth", WEIGHTS)
    card(fetch={"url": url})
    assert fetch(MODEL, "--to", str(tmp_path)) == 0
    capsys.readouterr()
    downloads = len(hub.requested("GET", "/files/"))
    assert fetch(MODEL, "--to", str(tmp_path)) == 0
    assert printed(capsys)[0].startswith("already there:")
    assert len(hub.requested("GET", "/files/")) == downloads

    hub.add_commit(REPO, {"config.json": CONFIG, "model.safetensors": WEIGHTS[::-1]}, lfs={"model.safetensors"})
    card(fetch={"hub": REPO})
    folder = tmp_path / MODEL
    before = (folder / LOCK_NAME).read_bytes()
    assert fetch(MODEL, "--to", str(tmp_path)) == 2
    assert f"already holds {MODEL} from {url}" in printed(capsys)[1]
    assert (folder / LOCK_NAME).read_bytes() == before and (folder / CHECKPOINT).is_file()

    assert fetch(MODEL, "--to", str(tmp_path), "--force") == 0
    assert read_lock(folder)["source"]["hub"] == REPO
    assert sorted(p.name for p in folder.iterdir()) == sorted([LOCK_NAME, "config.json", "model.safetensors"])


def test_upstream_content_that_changed_needs_force(hub, card, tmp_path: Path, capsys) -> None:
    url = hub.add_url("w.pth", WEIGHTS)
    card(fetch={"url": url})
    assert fetch(MODEL, "--to", str(tmp_path)) == 0
    (tmp_path / MODEL / CHECKPOINT).write_bytes(b"damaged")  # the folder no longer verifies: fetch repairs it...
    hub.add_url("w.pth", WEIGHTS + b"!")  # ...but upstream now serves other bytes
    assert fetch(MODEL, "--to", str(tmp_path)) == 2
    assert f"what {url} serves now differs from its lock ({CHECKPOINT})" in printed(capsys)[1]
    assert fetch(MODEL, "--to", str(tmp_path), "--force") == 0
    assert read_lock(tmp_path / MODEL)["files"][0]["sha256"] == sha256(WEIGHTS + b"!")


def test_a_folder_of_other_files_is_not_written_into(hub, card, tmp_path: Path, capsys) -> None:
    card(fetch={"url": hub.add_url("w.pth", WEIGHTS)})
    (tmp_path / MODEL).mkdir()
    (tmp_path / MODEL / "mine.txt").write_text("the user's")
    assert fetch(MODEL, "--to", str(tmp_path)) == 2
    assert "holds files but no medprobe-weights.lock.json" in printed(capsys)[1]
    assert fetch(MODEL, "--to", str(tmp_path), "--force") == 0
    assert (tmp_path / MODEL / "mine.txt").read_text() == "the user's"


def test_an_install_that_fails_midway_leaves_no_lock(hub, card, tmp_path: Path, capsys, monkeypatch) -> None:
    url = hub.add_url("w.pth", WEIGHTS)
    card(fetch={"url": url})
    to = tmp_path / "w"
    assert fetch(MODEL, "--to", str(to)) == 0
    hub.add_commit(REPO, {"config.json": CONFIG, "model.safetensors": WEIGHTS}, lfs={"model.safetensors"})
    card(fetch={"hub": REPO})
    real_replace = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(dst).name == "model.safetensors":
            raise OSError(5, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    assert fetch(MODEL, "--to", str(to), "--force") == 2
    assert "could not move the fetched files into place" in printed(capsys)[1]
    assert not (to / MODEL / LOCK_NAME).exists()  # half old, half new: not passed off as complete
    assert [p.name for p in to.iterdir()] == [MODEL]  # the staging folder is gone


# --- verify -----------------------------------------------------------------------------------------------------


@pytest.fixture
def fetched(hub, card, tmp_path: Path, capsys) -> Path:
    hub.add_commit(REPO, {"config.json": CONFIG, CHECKPOINT: WEIGHTS}, lfs={CHECKPOINT})
    card(fetch={"hub": REPO, "files": ["config.json", CHECKPOINT]})
    assert fetch(MODEL, "--to", str(tmp_path / "carried")) == 0
    capsys.readouterr()
    return tmp_path / "carried" / MODEL


def test_verify_passes_offline_and_prints_the_weights_line(fetched: Path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_ENDPOINT", "http://192.0.2.1:9")  # any network use would now be blocked and fail the test
    assert main(["models", "verify", str(fetched)]) == 0
    out, _ = printed(capsys)
    assert f"ok        {CHECKPOINT}" in out and "ok        config.json" in out
    assert "verified: " in out and "2 of 2 file(s) match, 0 differ, 0 missing, 0 extra" in out
    assert line(out, "weights") == str((fetched / CHECKPOINT).resolve())
    assert main(["models", "verify", str(fetched.parent)]) == 0  # a folder of fetched folders


def test_verify_names_a_tampered_byte(fetched: Path, capsys) -> None:
    data = bytearray((fetched / CHECKPOINT).read_bytes())
    data[5000] ^= 1
    (fetched / CHECKPOINT).write_bytes(bytes(data))
    assert main(["models", "verify", str(fetched)]) == 2
    out, err = printed(capsys)
    assert f"MISMATCH  {CHECKPOINT}: sha256 " in out and "ok        config.json" in out
    assert "FAILED: " in out and "1 differ" in out
    assert f"weights do not match their lock: {fetched} ({CHECKPOINT})" in err


def test_verify_names_a_missing_file_and_warns_of_extra_ones(fetched: Path, capsys) -> None:
    (fetched / "notes.txt").write_text("added on site")
    assert main(["models", "verify", str(fetched)]) == 0
    out, _ = printed(capsys)
    assert f"warning: {fetched / 'notes.txt'}: not in the lock" in out and "1 extra" in out
    (fetched / "config.json").unlink()
    assert main(["models", "verify", str(fetched)]) == 2
    out, err = printed(capsys)
    assert "MISSING   config.json" in out and "(config.json)" in err


def test_verify_without_a_lock_or_with_a_broken_one(fetched: Path, tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["models", "verify", str(empty)]) == 2
    assert "no medprobe-weights.lock.json in it or in its subfolders" in printed(capsys)[1]
    (fetched / LOCK_NAME).write_text('{"format": "medprobe-weights-lock/1", "files": [')
    assert main(["models", "verify", str(fetched)]) == 2
    assert "unreadable weights lock" in printed(capsys)[1]
    lock = {"format": "medprobe-weights-lock/1", "model": MODEL, "source": {"url": "x"}, "weights": ".",
            "medprobe_version": "0", "fetched_at": "t", "files": [{"path": "../../etc/passwd", "size": 1,
                                                                   "sha256": "0" * 64}]}
    (fetched / LOCK_NAME).write_text(json.dumps(lock))
    assert main(["models", "verify", str(fetched)]) == 2
    assert "is not inside the folder" in printed(capsys)[1]


# --- the rest of `medprobe models` ------------------------------------------------------------------------------


def test_models_without_a_subcommand_still_lists_the_zoo(capsys) -> None:
    assert main(["models"]) == 0
    lines: dict[str, str] = {}
    for row in printed(capsys)[0].splitlines():  # a model's row of every block of the table, in one line
        if row.strip():
            lines[row.split()[0]] = " ".join(f"{lines.get(row.split()[0], '')} {row}".split())
    assert [w for w in lines[MODEL].split() if w != MODEL][:5] == ["384", "Apache-2.0", "224", "-", CHECKPOINT]
    assert "CC BY-NC 4.0 *" in lines["retfound_mae"]  # a qualified licence is marked; `models show` has the terms
    # the 3D models' input and the authors' preprocessing a job applies by default
    assert "128 ct_fm ct: SPL, 3×1×1mm, HU -1024..2048, foreground crop" in lines["ct_fm"]
    assert "ct: RAS, 1.5×1.5×3mm, HU -1000..1000, pad 224×224×160" in lines["merlin"]
    assert "mri: z-score (non-zero)" in lines["brainiac"]


#: Modules that open connections of their own, and calls that download; fetch.py alone may use them. (MLflow's
#: client, which talks to the tracking server the user configured, and `requests` exception types are not downloads.)
NETWORK_MODULES = ("urllib.request", "http.client", "httpx", "httpx2", "torch.hub", "urllib3")
DOWNLOAD_CALLS = {"urlopen", "urlretrieve", "load_state_dict_from_url", "download_url_to_file", "HfApi",
                  "hf_hub_download", "snapshot_download"}
#: huggingface_hub's download functions are allowed elsewhere as cache look-ups: `local_files_only=True`.
CACHE_ONLY = {"hf_hub_download", "snapshot_download"}


def network_uses(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            found += [f"import {n}" for n in names if n.split(".")[0] in NETWORK_MODULES or n in NETWORK_MODULES]
        elif isinstance(node, ast.Call):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            flags = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
            if func in DOWNLOAD_CALLS and not (func in CACHE_ONLY and flags.get("local_files_only") is True):
                found.append(f"{func}(...)")
            if flags.get("pretrained") is True:
                found.append(f"{func}(pretrained=True)")
    return found


def test_fetch_is_the_only_module_that_downloads() -> None:
    """The offline guarantee is auditable: download clients appear in medprobe/models/fetch.py only."""
    users = {str(path.relative_to(ROOT)): uses for path in sorted((ROOT / "medprobe").rglob("*.py"))
             if (uses := network_uses(path.read_text(encoding="utf-8")))}
    assert list(users) == ["medprobe/models/fetch.py"], users
    assert network_uses("from huggingface_hub import snapshot_download\nsnapshot_download('a/b')")  # can fail
    assert not network_uses("snapshot_download('a/b', local_files_only=True)")


def test_a_card_with_a_key_given_twice_is_refused(card: Callable[..., None], tmp_path: Path) -> None:
    card()
    path = tmp_path / "zoo" / MODEL / "card.yaml"
    path.write_text(path.read_text(encoding="utf-8") + "embed_dim: 768\n", encoding="utf-8")
    with pytest.raises(cards.MedprobeError, match=r"key 'embed_dim' is given twice \(lines \d+ and \d+\)"):
        cards.load_card(MODEL)


def test_a_trickling_server_ends_at_the_deadline(hub, card, tmp_path: Path, capsys) -> None:
    url = hub.add_url("slow.pth", WEIGHTS[:200], trickle_s=0.2)
    card(fetch={"url": url})
    to = tmp_path / "w"
    assert fetch(MODEL, "--to", str(to), "--timeout", "0.5") == 2
    err = printed(capsys)[1]
    assert url in err and "not finished within --timeout 0.5 s; nothing was kept" in err
    assert list(to.iterdir()) == []


def test_a_redirect_to_another_origin_is_refused_unless_allowed(hub, card, tmp_path: Path, capsys) -> None:
    with LoopbackHub() as other:
        target = other.add_url("w.pth", WEIGHTS)
        url = hub.add_url("moved.pth", b"", status=302, location=target)
        card(fetch={"url": url})
        assert fetch(MODEL, "--to", str(tmp_path / "refused")) == 2
        err = printed(capsys)[1]
        port = target.split(":")[2].split("/")[0]
        assert f"{url}: redirected (HTTP 302) to another origin, http://127.0.0.1:{port}; refused" in err
        assert "--allow-redirect-host 127.0.0.1" in err and other.requested("GET", "/files/") == []
        assert fetch(MODEL, "--to", str(tmp_path / "ok"), "--allow-redirect-host", "127.0.0.1") == 0
        assert (tmp_path / "ok" / MODEL / CHECKPOINT).read_bytes() == WEIGHTS


def test_a_redirect_within_the_origin_is_followed(hub, card, tmp_path: Path) -> None:
    target = hub.add_url("w.pth", WEIGHTS)
    card(fetch={"url": hub.add_url("moved.pth", b"", status=301, location=target)})
    assert fetch(MODEL, "--to", str(tmp_path / "w")) == 0
    assert (tmp_path / "w" / MODEL / CHECKPOINT).read_bytes() == WEIGHTS
