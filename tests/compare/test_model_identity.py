"""`medprobe compare` keys a model by what it is (fingerprint and weights), not by the name a job gave it; and it
reads a store without creating one, answering an unknown experiment with the ones there are."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from medprobe.cli.main import main
from medprobe.compare import (
    identity_notes,
    matrix_tables,
    model_labels,
    protocol_runs,
    sites_side_by_side,
    transfer_matrix,
    transfer_runs,
)
from medprobe.tracking import TrackingStore, naming

EXPERIMENT = "medprobe/identity"
KEY = "dinov2_vitb14"
PRETRAINED = {naming.MODEL_FINGERPRINT: f"{KEY}-aaaa1111bbbb2222", naming.WEIGHTS: "sha256:" + "1234abcd" * 8}
RANDOM_INIT = {naming.MODEL_FINGERPRINT: f"{KEY}-cccc3333dddd4444", naming.WEIGHTS: "random-init",
               naming.RANDOM_INIT_NOTE: naming.RANDOM_INIT_TEXT}
HANDCRAFTED = {naming.MODEL_FINGERPRINT: "handcrafted-eeee5555ffff6666", naming.WEIGHTS: "handcrafted-v1"}
#: Sites a and c run the pretrained model, b and d a random-init one under the same model key.
SITES = {"site-a": PRETRAINED, "site-b": RANDOM_INIT, "site-c": PRETRAINED, "site-d": RANDOM_INIT}
PRETRAINED_LABEL = f"{KEY} (weights sha256:1234abcd)"
RANDOM_LABEL = f"{KEY} (random-init)"


def _tags(site: str, model: str, identity: dict[str, str]) -> dict[str, str]:
    """The tags a site job's `JobRecorder._tags` writes."""
    architecture = "handcrafted-v1" if model == "handcrafted" else KEY
    return {naming.SITE: site, naming.MODEL: model, naming.ARCHITECTURE: architecture, naming.TASK: "lesion",
            naming.TASK_TYPE: "classification", naming.TARGET: "lesion", naming.DATASET_DIGEST: f"digest-{site}",
            naming.PIPELINE: "identity", **identity}


def _log(store: TrackingStore, experiment: str, name: str, tags: dict[str, str], auroc: float,
         parent: str | None = None) -> str:
    run = store.start_run(experiment, name, tags, parent_run_id=parent)
    store.log(run, metrics={"test/auroc": auroc, "test/auroc_ci_low": auroc - 0.05, "test/auroc_ci_high": auroc + 0.05,
                            "test/accuracy": auroc - 0.1})
    store.finish(run)
    return run


def _auroc(site: str, model: str) -> float:
    """Distinct values: pretrained dinov2 0.9x, random-init 0.5x, handcrafted 0.7x (x: the site's index)."""
    index = sorted(SITES).index(site)
    if model == "handcrafted":
        return 0.70 + 0.01 * index
    return (0.90 if SITES[site] is PRETRAINED else 0.50) + 0.01 * index


def _populate(uri: str) -> None:
    """Four sites' jobs (a job run, linear and knn protocol runs per model), and the transfer runs a site job
    makes: only between sites whose encoder fingerprints match."""
    store = TrackingStore(uri)
    experiment = store.experiment_id(EXPERIMENT)
    for site, dinov2 in SITES.items():
        for model, identity in ((KEY, dinov2), ("handcrafted", HANDCRAFTED)):
            tags = _tags(site, model, identity)
            job = store.start_run(experiment, naming.job_run_name(site, model, "lesion"),
                                  {**tags, naming.RUN_KIND: "job"})
            for protocol in ("linear", "knn"):
                _log(store, experiment, naming.protocol_run_name(site, model, "lesion", protocol),
                     {**tags, naming.PROTOCOL: protocol, naming.RUN_KIND: "protocol"},
                     _auroc(site, model) - (0.02 if protocol == "knn" else 0), parent=job)
            store.finish(job)
    for train, test in (("site-a", "site-c"), ("site-c", "site-a"), ("site-b", "site-d"), ("site-d", "site-b")):
        tags = {**_tags(test, KEY, SITES[test]), naming.PROTOCOL: "transfer", naming.RUN_KIND: "transfer",
                naming.TRAIN_SITE: train, naming.HEAD_RUN_UID: f"uid-{train}"}
        _log(store, experiment, naming.transfer_run_name(train, test, KEY, "lesion"), tags,
             _auroc(test, KEY) - 0.05)


@pytest.fixture(scope="module")
def populated(tmp_path_factory: pytest.TempPathFactory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('identity') / 'mlflow.db'}"
    _populate(uri)
    return uri


def test_same_model_key_with_two_fingerprints_gives_two_rows_and_a_note(populated: str, tmp_path: Path,
                                                                          capsys) -> None:
    out = tmp_path / "cmp"
    assert main(["compare", "--experiment", EXPERIMENT, "--tracking-uri", populated, "--out", str(out),
                 "--no-log"]) == 0
    printed = capsys.readouterr().out
    note = next(line for line in printed.splitlines() if line.startswith("note:"))
    assert f"runs named '{KEY}' measured 2 different models" in note and "kept apart" in note
    assert f"'{RANDOM_LABEL}' at site-b, site-d" in note and f"'{PRETRAINED_LABEL}' at site-a, site-c" in note
    assert "handcrafted" not in note  # one fingerprint: the bare key, no note

    runs = pd.read_csv(out / "comparison.csv")
    assert len(runs) == 4 * 2 * 2  # sites × models × protocols: no run superseded another
    assert {"weights", "fingerprint", "model_key"} <= set(runs.columns)
    assert set(runs["model"]) == {PRETRAINED_LABEL, RANDOM_LABEL, "handcrafted"}
    assert set(runs["model_key"]) == {KEY, "handcrafted"}
    per_label = runs.groupby("model").agg(sites=("site", lambda s: tuple(sorted(set(s)))),
                                          fingerprints=("fingerprint", "nunique"), weights=("weights", "first"))
    assert per_label.loc[PRETRAINED_LABEL, "sites"] == ("site-a", "site-c")
    assert per_label.loc[RANDOM_LABEL, "sites"] == ("site-b", "site-d")
    assert per_label.loc[RANDOM_LABEL, "weights"] == "random-init"
    assert (per_label["fingerprints"] == 1).all()
    # The side-by-side table in the terminal: the two models are separate rows, each only where it ran.
    assert f"{RANDOM_LABEL}  " in printed and f"{PRETRAINED_LABEL} " in printed
    table = sites_side_by_side(protocol_runs(TrackingStore(populated), EXPERIMENT))
    assert table.loc[("lesion", RANDOM_LABEL, "linear", "auroc")].round(3).fillna(-1).tolist() == [-1, 0.51, -1, 0.53]
    assert table.loc[("lesion", PRETRAINED_LABEL, "linear", "auroc")].round(3).fillna(-1).tolist() == [0.9, -1, 0.92,
                                                                                                        -1]
    assert "Note:" in (out / "report.html").read_text()


def test_transfer_matrix_never_mixes_fingerprints(populated: str) -> None:
    store = TrackingStore(populated)
    runs = protocol_runs(store, EXPERIMENT)
    matrix = transfer_matrix(runs, transfer_runs(store, EXPERIMENT))
    grids = matrix_tables(matrix)
    assert set(grids) == {(PRETRAINED_LABEL, "lesion", "auroc"), (RANDOM_LABEL, "lesion", "auroc")}
    pretrained = grids[(PRETRAINED_LABEL, "lesion", "auroc")]
    assert list(pretrained.index) == list(pretrained.columns) == ["site-a", "site-c"]
    assert pretrained.loc["site-a", "site-a"] == pytest.approx(0.90)  # own linear probe of the pretrained model
    assert pretrained.loc["site-a", "site-c"] == pytest.approx(0.92 - 0.05)
    random_init = grids[(RANDOM_LABEL, "lesion", "auroc")]
    assert list(random_init.index) == ["site-b", "site-d"]
    assert random_init.loc["site-b", "site-b"] == pytest.approx(0.51)
    for label, cells in matrix.groupby("model"):
        assert cells["fingerprint"].nunique() == 1, label
    assert set(matrix[matrix["model"] == RANDOM_LABEL]["weights"]) == {"random-init"}


def test_a_rerun_with_other_weights_is_another_model_and_a_rerun_with_the_same_supersedes(tmp_path: Path) -> None:
    store = TrackingStore(f"sqlite:///{tmp_path / 'm.db'}")
    experiment = store.experiment_id(EXPERIMENT)
    protocol = {naming.PROTOCOL: "linear", naming.RUN_KIND: "protocol"}
    _log(store, experiment, "first", {**_tags("site-a", KEY, RANDOM_INIT), **protocol}, 0.5)
    _log(store, experiment, "second", {**_tags("site-a", KEY, PRETRAINED), **protocol}, 0.8)
    _log(store, experiment, "third", {**_tags("site-a", KEY, PRETRAINED), **protocol}, 0.9)
    runs = protocol_runs(store, EXPERIMENT).set_index("model")
    assert runs["auroc"].to_dict() == {PRETRAINED_LABEL: 0.9, RANDOM_LABEL: 0.5}


def test_labels_stay_bare_for_one_identity_and_use_the_fingerprint_when_weights_agree() -> None:
    old = pd.DataFrame({"model": ["m", "m"], "site": ["a", "b"]})  # runs from before fingerprint tags
    assert set(model_labels(old).values()) == {"m"} and identity_notes(old) == []
    same_weights = pd.DataFrame({"model_key": ["m", "m", "m"], "fingerprint": ["m-0123456789abcdef", "m-fedcba98", ""],
                                 "weights": ["random-init"] * 3, "site": ["a", "b", "c"]})
    assert sorted(model_labels(same_weights).values()) == [
        "m (random-init, fingerprint 01234567)", "m (random-init, fingerprint fedcba98)",
        "m (random-init, no fingerprint)"]
    other_architecture = pd.DataFrame({"model_key": ["enc", "enc"], "fingerprint": ["x-1", "y-2"],
                                       "weights": ["sha256:" + "ab" * 32, "random-init"],
                                       "architecture": ["retfound_mae", "dinov2_vitb14"]})
    assert sorted(model_labels(other_architecture).values()) == [
        "enc (dinov2_vitb14, random-init)", "enc (retfound_mae, weights sha256:abababab)"]


def test_an_unknown_experiment_lists_the_existing_ones(tmp_path: Path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)  # a store as MLflow itself makes it
    for name in ("medprobe/demo-brain-mri", "medprobe/demo-fundus"):
        client.create_experiment(name)
    assert main(["compare", "--experiment", "demo-brain-mri", "--tracking-uri", uri]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err
    assert "experiment 'demo-brain-mri' not found" in lines[0]
    assert "did you mean 'medprobe/demo-brain-mri'?" in lines[0]
    assert "experiments there: 'medprobe/demo-brain-mri', 'medprobe/demo-fundus'" in lines[0]
    assert "'Default'" not in lines[0]
    # A close misspelling is suggested too.
    assert main(["compare", "--experiment", "medprobe/demo-fundsu", "--tracking-uri", uri]) == 2
    assert "did you mean 'medprobe/demo-fundus'" in capsys.readouterr().err
    # An empty store says so.
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    TrackingStore(empty)
    assert main(["compare", "--experiment", "x", "--tracking-uri", empty]) == 2
    assert "holds no experiments" in capsys.readouterr().err


def test_a_mistyped_sqlite_path_is_not_created(tmp_path: Path, capsys, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["compare", "--experiment", "medprobe/x", "--tracking-uri", "sqlite:///does/not/exist.db"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does/not/exist.db does not exist" in err
    assert "experiment 'medprobe/x' not found" in err
    assert list(tmp_path.iterdir()) == []  # no database, no folder, no lock file
    absolute = tmp_path / "nothing.db"
    assert main(["compare", "--experiment", "medprobe/x", "--tracking-uri", f"sqlite:///{absolute}"]) == 2
    assert not absolute.exists() and list(tmp_path.iterdir()) == []
    # A local file store that is not there is not created either.
    assert main(["compare", "--experiment", "medprobe/x", "--tracking-uri", str(tmp_path / "mlruns")]) == 2
    assert "does not exist" in capsys.readouterr().err and list(tmp_path.iterdir()) == []


def test_a_file_that_is_no_mlflow_store_is_left_alone(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    assert main(["compare", "--experiment", "medprobe/x", "--tracking-uri", f"sqlite:///{empty}"]) == 2
    assert "is not an MLflow tracking store" in capsys.readouterr().err
    text = tmp_path / "notes.db"
    text.write_text("not a database\n" * 100)
    assert main(["compare", "--experiment", "medprobe/x", "--tracking-uri", f"sqlite:///{text}"]) == 2
    assert "not a readable SQLite database" in capsys.readouterr().err
    assert empty.stat().st_size == 0 and sorted(p.name for p in tmp_path.iterdir()) == ["empty.db", "notes.db"]
