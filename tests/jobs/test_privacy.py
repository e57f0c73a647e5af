"""Nothing identifying may reach MLflow: plant recognisable strings in paths and IDs, then scan everything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from medprobe.cli.main import main
from tests.conftest import blob_volume, write_volume

PLANTED = ("DOE^JOHN", "MRN4471923", "SMITH_JANE", "StMarysHospital")


def test_mlflow_store_and_artifacts_hold_no_identifiers(tmp_path: Path, write_spec, capsys) -> None:
    rng = np.random.default_rng(1)
    root = tmp_path / "StMarysHospital" / "DOE^JOHN"
    rows = []
    for i in range(12):
        path = write_volume(root / f"SMITH_JANE_{i}.nii.gz", blob_volume(rng, bool(i % 2)))
        rows.append({"path": str(path), "subject_id": f"MRN4471923-{i // 2}", "label": i % 2,
                     "split": "test" if i // 2 in (0, 3) else "train"})
    (root / "SMITH_JANE_5.nii.gz").write_text("corrupt")  # its reason must not name the file either
    manifest = tmp_path / "StMarysHospital" / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    store = tmp_path / "tracking"
    spec = write_spec(manifest, tracking={"uri": f"sqlite:///{store / 'mlflow.db'}"})
    assert main(["run", str(spec), "--no-progress"]) == 3
    # A second site scores the first one's probe head: its transfer run and the head are scanned as well.
    other = write_spec(manifest, "other.yaml", site="site-y", tracking={"uri": f"sqlite:///{store / 'mlflow.db'}"},
                       workdir=str(tmp_path / "work-y"))
    assert main(["run", str(other), "--no-progress"]) == 3
    assert "transfer site-x → site-y" in capsys.readouterr().out

    scanned = 0
    for file in store.rglob("*"):
        if file.is_file():
            content = file.read_bytes()
            scanned += 1
            for secret in PLANTED:
                assert secret.encode() not in content, f"{secret} found in {file.relative_to(store)}"
    names = {p.name for p in store.rglob("*") if p.is_file()}
    assert {"mlflow.db", "spec.json", "model_card.json", "predictions.csv", "quarantine.json", "head.json",
            "head.safetensors"} <= names
    assert scanned >= 12
