"""No path, in any form, leaves the site: a patient's name planted in the folders of good and unreadable files of
every reader family, named through `//`, `/./`, `..`, a symlink and a relative path, must appear nowhere in the
MLflow store, its artifacts, the results bundle or what the job prints (the local-only skip log keeps paths)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from medprobe.cli.main import main
from tests.conftest import blob_volume, write_volume

PATIENT = "DOE^JOHN"
HOSPITAL = "StMarysHospital"


def _bad_files(folder: Path) -> list[Path]:
    """One unreadable file per reader family."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "broken.nii.gz").write_bytes(b"not a nifti")
    (folder / "pair.hdr").write_bytes(bytes(348))  # an Analyze header whose .img sibling is missing
    (folder / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    (folder / "broken.mha").write_text("ObjectType = Image\nNDims = 3\nElementDataFile = missing.raw\n")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return sorted(p for p in folder.iterdir() if p.suffix != ".img")


def test_no_form_of_a_path_leaves_the_site(tmp_path: Path, write_spec, capsys) -> None:
    rng = np.random.default_rng(2)
    patient = tmp_path / HOSPITAL / PATIENT
    good = [write_volume(patient / f"scan{i}.nii.gz", blob_volume(rng, bool(i % 2))) for i in range(10)]
    bad = _bad_files(patient / "bad")
    (tmp_path / "alias").symlink_to(patient, target_is_directory=True)
    forms = [
        str(good[0]).replace(f"/{PATIENT}/", f"//{PATIENT}//"),
        str(good[1]).replace(f"/{PATIENT}/", f"/./{PATIENT}/./"),
        str(patient / ".." / PATIENT / good[2].name),
        str(tmp_path / "alias" / good[3].name),
        os.path.relpath(good[4], tmp_path / HOSPITAL),  # relative to the manifest's folder
        *map(str, good[5:]),
        *(str(p).replace(f"/{PATIENT}/", f"//{PATIENT}/./") for p in bad[:2]),
        str(tmp_path / "alias" / "bad" / bad[2].name),
        *(os.path.relpath(p, tmp_path / HOSPITAL) for p in bad[3:]),
    ]
    rows = [{"path": path, "subject_id": f"S{i}", "label": i % 2} for i, path in enumerate(forms)]
    manifest = tmp_path / HOSPITAL / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    store = tmp_path / "tracking"
    spec = write_spec(manifest, tracking={"uri": f"sqlite:///{store / 'mlflow.db'}"},
                      protocols={"linear": {"bootstrap": 0}, "knn": {"k": [3], "primary_k": 3, "bootstrap": 0}})
    assert main(["run", str(spec), "--no-progress"]) == 3
    printed = capsys.readouterr()

    quarantine = pd.read_csv(tmp_path / "work" / "quarantine.csv")
    assert len(quarantine) == len(bad) and "path" not in quarantine.columns
    local = pd.read_csv(tmp_path / "work" / "local-only" / "skipped-files.csv")
    assert len(local) == len(bad)  # the site's own log keeps the paths, as the manifest gave them
    assert local["path"].str.contains(PATIENT, regex=False).sum() == len(bad) - 1  # one through the link
    work = tmp_path / "work"
    leaving = [p for folder in (store, work / "bundles") for p in folder.rglob("*") if p.is_file()]
    leaving += [work / "quarantine.csv", work / "results.json"]
    assert any(p.name == "quarantine.json" for p in leaving)
    for file in leaving:
        for secret in (PATIENT, HOSPITAL, "broken", "pair.img"):
            assert secret.encode() not in file.read_bytes(), f"{secret} in {file}"
    for secret in (PATIENT, "broken", "pair.img"):
        assert secret not in printed.out and secret not in printed.err

