"""A sealed bundle syncs only as the job left it: `medprobe sync` checks every file against `digests.json` before
it sends anything, refuses a damaged bundle naming the file (exit 2), and refuses an unsealed one unless
`--accept-unverified`. The writer seals a bundle whenever none of its runs is open, and a restarted job seals the
bundle its killed attempt left."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from medprobe.cli.main import main
from medprobe.jobs.workdir_lock import LOCK_FILE
from medprobe.tracking import naming
from medprobe.tracking.bundle import DIGESTS, SYNC_LOCK, ResultsBundle, close_abandoned, verify
from tests.tracking.bundles import EXPERIMENT, runs_per_uid, write_bundle


def _run_folder(bundle: ResultsBundle, protocol: str | None) -> Path:
    """The folder of the protocol run `protocol`, or of the job run for None."""
    record = next(r for r in bundle.runs() if r["tags"].get(naming.PROTOCOL) == protocol)
    return bundle.root / "runs" / record["uid"]


def _change_a_metric_digit(bundle: ResultsBundle) -> Path:
    path = _run_folder(bundle, "linear") / "run.json"
    text = path.read_text()
    assert text.count('"test/accuracy": 0.5') == 1
    path.write_text(text.replace('"test/accuracy": 0.5', '"test/accuracy": 0.8'))
    json.loads(path.read_text())  # still a well-formed record: only the digest can tell
    return path


def _truncate_an_artifact(bundle: ResultsBundle) -> Path:
    path = _run_folder(bundle, "fewshot") / "artifacts" / "notes.txt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return path


def _delete_an_artifact(bundle: ResultsBundle) -> Path:
    path = _run_folder(bundle, None) / "artifacts" / "spec.json"
    path.unlink()
    return path


def _add_a_file(bundle: ResultsBundle) -> Path:
    path = _run_folder(bundle, "knn") / "artifacts" / "extra.csv"
    path.write_text("a,b\n1,2\n")
    return path


def _flip_a_byte(name: str) -> Callable[[ResultsBundle], Path]:
    def flip(bundle: ResultsBundle) -> Path:
        path = bundle.root / name
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        return path

    return flip


DAMAGE = {
    "run.json digit": _change_a_metric_digit,
    "truncated artifact": _truncate_an_artifact,
    "deleted artifact": _delete_an_artifact,
    "added file": _add_a_file,
    "summary.csv byte": _flip_a_byte("summary.csv"),
    "bundle.json byte": _flip_a_byte("bundle.json"),
    "digests.json byte": _flip_a_byte(DIGESTS),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_a_damaged_bundle_is_refused_naming_the_file_and_nothing_is_sent(
        damage: Callable[[ResultsBundle], Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = write_bundle(tmp_path / "bundles")
    name = damage(bundle).relative_to(bundle.root).as_posix()
    central = tmp_path / "central.db"
    assert main(["sync", str(bundle.root), "--to", f"sqlite:///{central}", "--accept-unverified"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "damaged results bundle" in err, err
    assert f": {name} " in err and "nothing was synced" in err, err
    assert not central.exists()  # refused before the tracking store was even opened


def test_an_intact_bundle_syncs_once(tmp_path: Path, mlflow_server_template: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    bundle = write_bundle(tmp_path / "bundles")
    shutil.copyfile(mlflow_server_template, tmp_path / "central.db")
    uri = f"sqlite:///{tmp_path / 'central.db'}"
    assert main(["sync", str(bundle.root), "--tracking-uri", uri]) == 0
    assert "4 run(s) created, 0 completed, 0 already there" in capsys.readouterr().out
    assert (bundle.root / SYNC_LOCK).exists()  # the lock file stays, and is not part of the seal
    assert main(["sync", str(bundle.root), "--tracking-uri", uri]) == 0
    captured = capsys.readouterr()
    assert "0 run(s) created, 0 completed, 4 already there" in captured.out and captured.err == ""
    assert runs_per_uid(uri) == {record["uid"]: 1 for record in bundle.runs()}


def test_an_unsealed_bundle_needs_accept_unverified(tmp_path: Path, mlflow_server_template: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    bundle = write_bundle(tmp_path / "bundles")
    (bundle.root / DIGESTS).unlink()
    shutil.copyfile(mlflow_server_template, tmp_path / "central.db")
    uri = f"sqlite:///{tmp_path / 'central.db'}"
    assert main(["sync", str(bundle.root), "--to", uri]) == 2
    err = capsys.readouterr().err
    assert f"no {DIGESTS}" in err and "--accept-unverified" in err and err.count("\n") == 1
    assert runs_per_uid(uri) == {}
    assert main(["sync", str(bundle.root), "--to", uri, "--accept-unverified"]) == 0
    captured = capsys.readouterr()
    assert "4 run(s) created" in captured.out and "synced unchecked" in captured.err


def test_a_folder_that_is_no_bundle_is_named_as_such(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty").mkdir()
    uri = f"sqlite:///{tmp_path / 'central.db'}"
    assert main(["sync", str(tmp_path / "empty"), "--to", uri]) == 2
    assert "not a medprobe results bundle" in capsys.readouterr().err
    assert main(["sync", str(tmp_path / "missing"), "--to", uri]) == 2
    assert "no such folder" in capsys.readouterr().err
    assert not (tmp_path / "missing").exists() and not (tmp_path / "central.db").exists()


def test_the_writer_seals_whenever_no_run_is_open(tmp_path: Path) -> None:
    bundle = ResultsBundle.new(tmp_path)
    verify(bundle.root)  # a new, empty bundle is complete
    experiment = bundle.experiment_id(EXPERIMENT)
    run = bundle.start_run(experiment, "job", {})
    assert not (bundle.root / DIGESTS).exists()  # open: a kill now leaves it unsealed, never wrongly sealed
    bundle.log(run, metrics={"m": 1.0})
    bundle.finish(run)
    verify(bundle.root)
    bundle.log_text(run, "late\n", "late.txt")  # a change after the end is sealed again
    verify(bundle.root)
    assert not list(bundle.root.rglob(".tmp-*"))


def test_a_restarted_job_closes_and_seals_the_bundle_its_killed_attempt_left(tmp_path: Path) -> None:
    killed = ResultsBundle.new(tmp_path)
    run = killed.start_run(killed.experiment_id(EXPERIMENT), "job", {})
    killed.log_text(run, "half", "notes.txt")
    leftover = killed.root / "runs" / run / "artifacts" / ".tmp-123-abcdef01-predictions.csv"
    leftover.write_text("sample_id,score\n")  # what a SIGKILL in the middle of a write leaves
    assert close_abandoned(tmp_path) == 1
    assert killed.run(run)["status"] == "KILLED" and not leftover.exists()
    verify(killed.root)
    assert close_abandoned(tmp_path) == 0


def test_the_sync_lock_is_the_workdir_lock_file() -> None:
    assert SYNC_LOCK == LOCK_FILE  # the seal leaves out the file `medprobe sync` locks
