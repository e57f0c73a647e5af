"""Folder and file names drawn from medprobe's own vocabulary and from identifying-looking names, with one corrupt
file per reader family: the job completes with its documented exit code, the guard has nothing to withhold
(what is logged is built from the closed vocabulary), and no planted token reaches any byte that may leave the
site."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from medprobe.cli.main import main
from medprobe.models import model_card
from medprobe.privacy.vocabulary import template_words
from medprobe.privacy.words import word_parts
from tests.conftest import blob_volume, spec_dict, write_volume

#: Names a person or a record could be filed under: spaces, `^`, dates, composed and decomposed accents, dots.
IDENTIFYING = ["SMITH ANN  19600102", "X.Smith^Ann_1960-01-02", "Mu\u0308ller Zoe\u0308 19721231",
               "García López", ".Okonkwo_Chidi", "WANGXiuying^MRN88123456"]
PLANTED = ["smith", "ann", "19600102", "müller", "zoë", "19721231", "garcía", "lópez", "okonkwo", "chidi",
           "wang", "xiuying", "mrn", "88123456"]


def _public_names(count: int) -> list[str]:
    """Folder names medprobe itself writes: template words, card words, the demo's and the job's names."""
    card = json.dumps(model_card("handcrafted").__dict__, default=str)
    words = sorted(w for w in template_words() | set(word_parts(card)) if w.isalpha() and len(w) >= 3)
    fixed = ["demo", "dcm", "audit", "lesion", "robust", "medprobe", "bias_field", "site-x"]
    return fixed + random.Random(7).sample(words, count)


def _corrupt_files(folder: Path) -> list[Path]:
    """One unreadable input per reader family, and the inputs that must never be opened or guessed at."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "whole.nii.gz"
    write_volume(good, np.random.default_rng(0).normal(size=(16, 16, 16)).astype(np.float32))
    truncated = folder / "cut.nii.gz"  # the header decompresses, the voxels end early
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    (folder / "garbage.nii").write_bytes(b"not a nifti header" * 30)
    (folder / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    series = folder / "series"
    series.mkdir()
    (series / "1").write_bytes(b"\0" * 128 + b"DICM" + b"x")
    (folder / "broken.mha").write_text("ObjectType = Image\nNDims = 3\nElementDataFile = missing.raw\n")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (folder / "broken.tif").write_bytes(b"II*\0garbage")
    (folder / "X.Smith^Ann_1960-01-02").write_bytes(b"unknown format")
    (folder / "empty.nrrd").write_bytes(b"")
    os.mkfifo(folder / "pipe.nii.gz")
    good.unlink()
    return [truncated, folder / "garbage.nii", folder / "broken.dcm", series, folder / "broken.mha",
            folder / "broken.png", folder / "broken.tif", folder / "X.Smith^Ann_1960-01-02",
            folder / "empty.nrrd", folder / "pipe.nii.gz", folder / "absent.nii.gz"]


@pytest.mark.slow
def test_generated_names_never_leave_the_site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(3)
    public = _public_names(12)
    folders = [*public, *IDENTIFYING]
    rows = []
    for i in range(24):
        folder = tmp_path / "data" / folders[i % len(folders)] / IDENTIFYING[i % len(IDENTIFYING)]
        name = f"{IDENTIFYING[(i + 1) % len(IDENTIFYING)]}-{public[i % len(public)]}.nii.gz"
        path = write_volume(folder / name, blob_volume(rng, bool(i % 2), (16, 16, 12)))
        rows.append({"path": str(path), "subject_id": f"{IDENTIFYING[i % 6]} {i:03d}", "label": i % 2})
    bad = _corrupt_files(tmp_path / "data" / "demo" / IDENTIFYING[0] / IDENTIFYING[2])
    rows += [{"path": str(p), "subject_id": f"{IDENTIFYING[3]} {100 + i}", "label": i % 2}
             for i, p in enumerate(bad)]
    manifest = tmp_path / "data" / "dcm" / "manifest.csv"
    manifest.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(manifest, index=False)
    work = tmp_path / "demo" / "dcm" / "audit"  # a workdir named like words of the job's own names
    store = tmp_path / "lesion" / "mlflow.db"
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(
        manifest, tmp_path, name="dcm-ct", workdir=str(work), tracking={"uri": f"sqlite:///{store}"},
        protocols={"linear": {"bootstrap": 0}})), encoding="utf-8")

    assert main(["run", str(spec), "--no-progress"]) == 3  # completed, some inputs skipped
    printed = capsys.readouterr()

    quarantine = pd.read_csv(work / "quarantine.csv")
    assert len(quarantine) == len(bad)
    categories = set(quarantine["category"])
    assert {"truncated-gzip", "corrupt-data", "dicom-missing-pixels", "unknown-format", "empty-file",
            "not-a-regular-file",
            "file-not-found", "dicom-series-not-found"} <= categories, categories
    assert len(pd.read_csv(work / "local-only" / "skipped-files.csv")) == len(bad)
    leaving = [p for folder in (store.parent, work / "bundles") for p in folder.rglob("*") if p.is_file()]
    leaving += [work / "quarantine.csv", work / "results.json"]
    assert not any("withheld" in p.name or b"<withheld" in p.read_bytes() for p in leaving)  # nothing to catch
    for file in leaving:
        found = set(PLANTED) & set(word_parts(file.read_bytes().decode("utf-8", errors="replace")))
        assert not found, f"{found} in {file.relative_to(tmp_path)}"
    assert not set(PLANTED) & set(word_parts(printed.out))


def test_the_planted_tokens_are_not_public_words() -> None:
    """Otherwise the test above would prove nothing: medprobe may write its own words."""
    assert not set(PLANTED) & template_words()
    assert all(token in word_parts(" ".join(IDENTIFYING)) for token in PLANTED)
