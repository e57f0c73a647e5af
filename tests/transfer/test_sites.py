"""Two sites, one SQLite store: each publishes its heads, scores the other's, and `compare` draws the matrix."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from medprobe.cli.main import main
from tests.transfer.sites import EXPERIMENT, runs_of_kind, site_spec


def test_two_sites_score_each_others_heads_and_compare_draws_the_matrix(
    tmp_path: Path, volume_dataset, write_spec, capsys
) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    site_a = site_spec(tmp_path, volume_dataset, write_spec, "site-a", uri)
    site_b = site_spec(tmp_path, volume_dataset, write_spec, "site-b", uri)
    assert main(["run", str(site_a), "--no-progress"]) == 0
    assert "transfer site-" not in capsys.readouterr().out  # nobody had published a head yet
    assert main(["run", str(site_b), "--no-progress"]) == 0
    assert "transfer site-a → site-b handcrafted/lesion: auroc" in capsys.readouterr().out
    assert main(["transfer", str(site_a)]) == 0
    printed = capsys.readouterr().out
    assert "transfer site-b → site-a handcrafted/lesion: auroc" in printed and "bundle: " in printed

    client = MlflowClient(uri)
    linear = {r.data.tags["medprobe.site"]: r for r in runs_of_kind(uri, "protocol")
              if r.data.tags["medprobe.protocol"] == "linear"}
    for run in linear.values():
        assert run.data.tags["medprobe.head"] == "probe_head"
        assert {a.path for a in client.list_artifacts(run.info.run_id, "probe_head")} == {
            "probe_head/head.json", "probe_head/head.safetensors"}
    transfers = runs_of_kind(uri, "transfer")
    assert {(r.data.tags["medprobe.train_site"], r.data.tags["medprobe.site"]) for r in transfers} == {
        ("site-a", "site-b"), ("site-b", "site-a")}
    for run in transfers:
        tags = run.data.tags
        assert tags["medprobe.protocol"] == "transfer" and tags["medprobe.model"] == "handcrafted"
        assert tags["medprobe.head_run_uid"] == linear[tags["medprobe.train_site"]].data.tags["medprobe.run_uid"]
        assert run.info.run_name == f"{tags['medprobe.train_site']} → {tags['medprobe.site']} · handcrafted · " \
                                    "lesion · transfer"
        assert "test/auroc_ci_low" in run.data.metrics and run.data.params["rows"] == "test split"
        assert "predictions.csv" in {a.path for a in client.list_artifacts(run.info.run_id)}

    out = tmp_path / "cmp"
    assert main(["compare", "--experiment", EXPERIMENT, "--tracking-uri", uri, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "transfer · lesion · handcrafted · auroc" in printed and "(4 cells)" in printed
    cells = pd.read_csv(out / "transfer.csv")
    assert {"value", "ci_low", "ci_high"} <= set(cells.columns)
    assert sorted(zip(cells["train_site"], cells["test_site"], cells["kind"], strict=True)) == [
        ("site-a", "site-a", "own"), ("site-a", "site-b", "transfer"),
        ("site-b", "site-a", "transfer"), ("site-b", "site-b", "own")]
    assert cells["value"].notna().all() and cells["ci_low"].notna().all()
    assert "Cross-site transfer" in (out / "report.html").read_text()
    assert (out / "lesion_handcrafted_transfer.png").is_file()
    local = json.loads((tmp_path / "work-site-b" / "results.json").read_text())
    assert [t["train_site"] for t in local["transfers"]] == ["site-a"]


def test_a_head_of_another_encoder_is_skipped_with_a_note(tmp_path: Path, volume_dataset, write_spec,
                                                           capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    site_a = site_spec(tmp_path, volume_dataset, write_spec, "site-a", uri)
    site_b = site_spec(tmp_path, volume_dataset, write_spec, "site-b", uri,
                       models=[{"name": "handcrafted", "options": {"bins": 16}}])
    assert main(["run", str(site_a), "--no-progress"]) == 0
    assert main(["run", str(site_b), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "site-a's handcrafted/lesion head skipped: it was fitted on embeddings of encoder handcrafted-" in printed
    assert runs_of_kind(uri, "transfer") == []
    notes = json.loads((tmp_path / "work-site-b" / "results.json").read_text())["transfer_notes"]
    assert len(notes) == 1 and "encoder" in notes[0]


def test_label_maps_that_differ_give_notes_and_metrics(tmp_path: Path, volume_dataset, write_spec,
                                                       capsys) -> None:
    def third_class(frame: pd.DataFrame) -> None:
        frame.loc[frame.index % 4 == 3, "label"] = 2

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    site_a = site_spec(tmp_path, volume_dataset, write_spec, "site-a", uri)
    site_b = site_spec(tmp_path, volume_dataset, write_spec, "site-b", uri, relabel=third_class)
    assert main(["run", str(site_a), "--no-progress"]) == 0
    assert main(["run", str(site_b), "--no-progress"]) == 0
    assert main(["transfer", str(site_a)]) == 0
    capsys.readouterr()
    client = MlflowClient(uri)
    notes = {}
    for run in runs_of_kind(uri, "transfer"):
        assert "test/accuracy" in run.data.metrics
        folder = client.download_artifacts(run.info.run_id, "notes.txt", str(tmp_path / run.info.run_id))
        notes[run.data.tags["medprobe.train_site"]] = Path(folder).read_text()
    assert "hold class(es) [2] that site-a's head was not trained on" in notes["site-a"]
    assert "site-b's head knows class(es) [2] that no scored row holds" in notes["site-b"]
