"""Every command reads a relative `sqlite:///x.db` as the same file, and an unreachable server is one line and
exit 2 for the commands that need one."""

from __future__ import annotations

import re
import socket
from pathlib import Path

from mlflow.tracking import MlflowClient

from medprobe.cli.main import main


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_relative_sqlite_uris_and_unreachable_servers(volume_dataset, write_spec, tmp_path: Path, capsys,
                                                      monkeypatch) -> None:
    manifest = volume_dataset(n=8)
    out = tmp_path / "emb"
    assert main(["embed", "--model", "handcrafted", "--manifest", str(manifest), "--out", str(out), "--site", "s",
                 "--workers", "0", "--no-progress", "--precision", "fp32"]) == 0
    monkeypatch.chdir(tmp_path)
    evaluate = ["evaluate", "--embeddings", str(out / "embeddings.parquet"), "--target", "label",
                "--protocols", "linear", "--bootstrap", "0", "--out", str(tmp_path / "ev")]
    assert main([*evaluate, "--tracking-uri", "sqlite:///relative.db"]) == 0
    assert (tmp_path / "relative.db").is_file()
    assert MlflowClient(f"sqlite:///{tmp_path / 'relative.db'}").get_experiment_by_name("medprobe/evaluate")
    capsys.readouterr()

    port = _closed_port()
    assert main([*evaluate, "--tracking-uri", f"http://127.0.0.1:{port}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and f"127.0.0.1:{port}" in err

    spec = write_spec(manifest, protocols={"linear": {"bootstrap": 0}})
    assert main(["run", str(spec), "--offline", "--no-progress"]) == 0
    bundle = re.search(r"^bundle: (.+)$", capsys.readouterr().out, re.MULTILINE).group(1)
    assert main(["sync", bundle, "--to", "sqlite:///synced.db"]) == 0
    # the job run, its linear run and the job's diagnostics run
    assert "3 run(s) created" in capsys.readouterr().out and (tmp_path / "synced.db").is_file()
    assert main(["compare", "--experiment", "medprobe/unit", "--tracking-uri", "sqlite:///typo.db"]) == 2
    assert not (tmp_path / "typo.db").exists()


def test_one_rule_picks_the_tracking_uri() -> None:
    """A command's flag, else $MLFLOW_TRACKING_URI, else the spec's or the command's own default."""
    from medprobe.tracking.uri import chosen_uri

    env = {"MLFLOW_TRACKING_URI": "http://server:5000"}
    assert chosen_uri("sqlite:///flag.db", "sqlite:///own.db", env) == "sqlite:///flag.db"
    assert chosen_uri(None, "sqlite:///own.db", env) == "http://server:5000"
    assert chosen_uri(None, "sqlite:///own.db", {}) == "sqlite:///own.db"
    assert chosen_uri(None, None, {}) is None
