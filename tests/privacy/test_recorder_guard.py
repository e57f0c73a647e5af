"""When something leaking reaches the recorder after all, the one value is withheld in MLflow and in the bundle, the
run says so (a metric and a note) and finishes: the guard never ends a job."""

from __future__ import annotations

import json
from pathlib import Path

from mlflow.tracking import MlflowClient

from medprobe.privacy.guard import WITHHELD, PathGuard
from medprobe.tracking.recorder import WITHHELD_METRIC, RunRecorder
from medprobe.tracking.run_kinds import COMPARISON


def test_a_leaking_value_is_withheld_and_the_run_finishes(tmp_path: Path) -> None:
    guard = PathGuard.for_paths([tmp_path / "data" / "SMITH ANN  19600102" / "scan.nii.gz"])
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    notes = tmp_path / "notes.csv"
    notes.write_text("sample,reason\nsmp-0123456789abcdef,reader said Smith\nsmp-fedcba9876543210,fine\n",
                     encoding="utf-8")
    with RunRecorder(uri, "medprobe/unit", bundle_dir=tmp_path / "bundles", guard=guard) as recorder:
        run = recorder.start_run(COMPARISON, "site-x · model",
                                 {"medprobe.site": "site-x", "medprobe.note": "ann was here"})
        recorder.log(run, metrics={"test/auroc": 0.9, "subgroup/smith/auroc": 0.5},
                     params={"fine": "linear", "leak": "19600102"})
        recorder.log_text(run, "line one\nfrom Smith\n", "notes.txt")
        recorder.log_json(run, {"ok": 1, "who": "ANN"}, "extra.json")
        recorder.log_file(run, notes)
        recorder.finish(run)
        server_id = recorder.server_run_id(run)
        bundle = recorder.bundle_path
    assert server_id is not None and bundle is not None

    client = MlflowClient(uri)
    logged = client.get_run(server_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.tags["medprobe.note"] == WITHHELD and logged.data.tags["medprobe.site"] == "site-x"
    assert logged.data.params == {"fine": "linear", "leak": WITHHELD}
    assert "subgroup/smith/auroc" not in logged.data.metrics and logged.data.metrics["test/auroc"] == 0.9
    assert logged.data.metrics[WITHHELD_METRIC] == 6  # tag, metric key, param, a notes line, a JSON value, a cell
    artifacts = Path(client.download_artifacts(server_id, "", str(tmp_path / "downloaded")))
    assert (artifacts / "notes.txt").read_text(encoding="utf-8") == f"line one\n{WITHHELD}\n"
    assert json.loads((artifacts / "extra.json").read_text(encoding="utf-8")) == {"ok": 1, "who": WITHHELD}
    assert WITHHELD in (artifacts / "notes.csv").read_text(encoding="utf-8")
    assert "6 value(s)" in (artifacts / "privacy.txt").read_text(encoding="utf-8")
    for file in [*artifacts.rglob("*"), *bundle.rglob("*")]:
        if file.is_file():
            text = file.read_text(encoding="utf-8", errors="replace").lower()
            assert "smith" not in text and "19600102" not in text and "ann was" not in text, file
