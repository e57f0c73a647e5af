"""Offline sites: `run --offline` exits 0 and an unreachable server 4 (the results are only in the bundle; the
message names the URI tried); both print `bundle: PATH`; `sync` delivers the bundle once."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from mlflow.tracking import MlflowClient

from medprobe.cli.main import main


def _bundle(printed: str) -> str:
    match = re.search(r"^bundle: (.+)$", printed, re.MULTILINE)
    assert match, printed
    return match.group(1)


def _count_runs(uri: str) -> int:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("medprobe/unit")
    return 0 if experiment is None else len(client.search_runs([experiment.experiment_id]))


def test_offline_run_then_sync_twice(volume_dataset, write_spec, tmp_path: Path, capsys) -> None:
    spec = write_spec(volume_dataset(n=10))
    assert main(["run", str(spec), "--offline", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    bundle = _bundle(printed)
    assert "offline (--offline)" in printed
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to the configured store
    assert (Path(bundle) / "summary.csv").read_text().count("\n") == 1 + 2  # a row per protocol run
    # synced: the job run, its protocol runs (linear, knn) and the job's diagnostics run
    central = f"sqlite:///{tmp_path / 'central.db'}"
    assert main(["sync", bundle, "--to", central]) == 0
    assert "4 run(s) created" in capsys.readouterr().out
    assert _count_runs(central) == 4
    assert main(["sync", bundle, "--to", central]) == 0
    assert "0 run(s) created, 0 completed, 4 already there" in capsys.readouterr().out
    assert _count_runs(central) == 4


def test_unreachable_server_falls_back_to_the_bundle(volume_dataset, write_spec, tmp_path: Path, capsys,
                                                     monkeypatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nothing listens there once the socket is closed
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    spec = write_spec(volume_dataset(n=10))
    assert main(["run", str(spec), "--no-progress"]) == 4
    printed = capsys.readouterr().out
    assert "tracking server unreachable" in printed
    assert "results are ONLY in the bundle" in printed and f"http://127.0.0.1:{port}" in printed
    bundle = _bundle(printed)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert main(["sync", bundle, "--to", f"sqlite:///{tmp_path / 'central.db'}"]) == 0
    assert _count_runs(f"sqlite:///{tmp_path / 'central.db'}") == 4  # job, linear, knn, diagnostics
    assert main(["sync", bundle, "--to", f"http://127.0.0.1:{port}"]) == 2
    assert "cannot reach" in capsys.readouterr().err
