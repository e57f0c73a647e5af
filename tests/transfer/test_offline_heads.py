"""Heads travel in the offline bundle: an offline site publishes through `medprobe sync`, and skips fetching."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from medprobe.cli.main import main
from medprobe.tracking.bundle import open_bundle
from tests.transfer.sites import runs_of_kind, site_spec


def test_heads_travel_in_the_bundle_and_sync_publishes_them(tmp_path: Path, volume_dataset, write_spec,
                                                            capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'central.db'}"
    site_a = site_spec(tmp_path, volume_dataset, write_spec, "site-a", uri)
    site_b = site_spec(tmp_path, volume_dataset, write_spec, "site-b", uri)
    assert main(["run", str(site_a), "--offline", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert len(re.findall(r"^transfer: offline \(--offline\); other sites' heads not fetched", printed,
                          re.MULTILINE)) == 1
    bundle = open_bundle(Path(re.search(r"^bundle: (.+)$", printed, re.MULTILINE).group(1)))
    linear = [r for r in bundle.runs() if r["tags"].get("medprobe.protocol") == "linear"]
    assert len(linear) == 1 and linear[0]["tags"]["medprobe.head"] == "probe_head"
    assert {p.name for p in bundle.artifacts(linear[0]["uid"]) if p.parent.name == "probe_head"} == {
        "head.json", "head.safetensors"}

    assert main(["sync", str(bundle.root), "--to", uri]) == 0
    assert main(["run", str(site_b), "--no-progress"]) == 0
    assert "transfer site-a → site-b handcrafted/lesion" in capsys.readouterr().out
    (transfer,) = runs_of_kind(uri, "transfer")
    assert transfer.data.tags["medprobe.head_run_uid"] == linear[0]["uid"]
    summary = (bundle.root / "summary.csv").read_text()
    assert "train_site" in summary.splitlines()[0]


def test_transfer_needs_the_cached_tables_and_a_reachable_store(tmp_path: Path, volume_dataset, write_spec,
                                                                capsys, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    spec = site_spec(tmp_path, volume_dataset, write_spec, "site-a", f"http://127.0.0.1:{port}")
    assert main(["transfer", str(spec)]) == 2
    assert "run `medprobe run SPEC` first" in capsys.readouterr().err
    assert main(["run", str(spec), "--offline", "--no-progress"]) == 0
    assert main(["transfer", str(spec)]) == 2
    assert "cannot use the tracking store http://127.0.0.1" in capsys.readouterr().err
    assert len(list((tmp_path / "work-site-a" / "bundles").iterdir())) == 1  # the job's, none for the failed step
