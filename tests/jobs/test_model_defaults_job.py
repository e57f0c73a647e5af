"""A CT site job with a 3D model that publishes its authors' preprocessing (VoCo-B: RAS, 1.5 mm, HU -175..250,
foreground crop): the job applies it and records it in the embedding table and the protocol runs; a volume of
nothing but air has no foreground and is skipped with its reason while the rest of the job goes on; the same job
with `model_defaults: false` gets other embeddings (another cache key), never the cached ones."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from medprobe.cli.main import main
from medprobe.embed.table import read_table
from medprobe.exit_codes import EXIT_SKIPPED
from medprobe.tracking import naming
from medprobe.transfer.space import preprocessing_digest

pytestmark = pytest.mark.slow(seconds=25)


def _ct_manifest(folder: Path) -> Path:
    """Eleven small CT volumes (an ellipsoid body in air, LPS, 1 × 1 × 2 mm) and one of air only."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, n) for n in (40, 40, 20)), indexing="ij"))
    rows = []
    for i in range(12):
        body = ((grid / rng.uniform(0.5, 0.9, 3)[:, None, None, None]) ** 2).sum(0) < 1
        volume = np.where(body, 40 + 300 * (i % 2) + rng.normal(0, 20, body.shape), -1000.0)
        if i == 11:
            volume = np.full(body.shape, -1024.0)
        path = folder / f"ct{i:02d}.nii.gz"
        nib.save(nib.Nifti1Image(volume.astype(np.int16), np.diag([-1.0, -1.0, 2.0, 1.0])), str(path))
        rows.append({"path": str(path), "subject_id": f"P{i:02d}", "label": i % 2,
                     "split": "test" if i % 3 == 0 else "train"})
    manifest = folder / "manifest.csv"
    pd.DataFrame(rows).to_csv(manifest, index=False)
    return manifest


def test_a_ct_job_applies_records_and_can_turn_off_the_authors_preprocessing(tmp_path: Path, write_spec,
                                                                              capsys) -> None:
    manifest = _ct_manifest(tmp_path / "data")
    models = [{"name": "voco_b", "options": {"input_size": 32}}]
    spec = write_spec(manifest, data={"manifest": str(manifest), "modality": "ct"}, models=models,
                      protocols={"linear": {"bootstrap": 0}})
    assert main(["run", str(spec), "--no-progress"]) == EXIT_SKIPPED
    skipped = pd.read_csv(next((tmp_path / "work").rglob("skipped-files.csv")))
    assert list(zip(skipped["path"].map(lambda p: Path(p).name), skipped["category"], strict=True)) == [
        ("ct11.nii.gz", "empty-foreground")]
    capsys.readouterr()
    table = tmp_path / "work" / "embeddings" / "voco_b.parquet"
    frame, _, meta = read_table(table)
    assert len(frame) == 11
    steps = meta["preprocessing"]
    record = steps[0]
    assert record == {"step": "model_defaults", "applied": True, "spec_overrides": [],
                      "from_model": ["crop_foreground", "intensity", "orientation", "spacing"]}
    assert {s["step"] for s in steps} >= {"orientation", "spacing", "intensity", "crop_foreground", "model_input"}

    digests = _preprocessing_tags(tmp_path)
    assert len(digests) == 1 and preprocessing_digest(steps) in digests

    off = write_spec(manifest, name="off.yaml", models=models, protocols={"linear": {"bootstrap": 0}},
                     data={"manifest": str(manifest), "modality": "ct", "preprocessing": {"model_defaults": False}})
    assert main(["run", str(off), "--no-progress"]) == 0  # without the crop the air volume is just dark
    printed = capsys.readouterr().out
    assert "0 from cache" in printed
    other, _, _ = read_table(table)
    assert len(other) == 12
    assert len(_preprocessing_tags(tmp_path)) == 2  # the runs of the two jobs say which chain they saw


def _preprocessing_tags(tmp_path: Path) -> set[str]:
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    return {run.data.tags[naming.PREPROCESSING] for run in runs if naming.PREPROCESSING in run.data.tags}


@pytest.mark.slow(seconds=2)
def test_one_model_can_override_a_step_for_itself(tmp_path: Path, write_spec) -> None:
    from medprobe.models import load_encoder
    from medprobe.pipeline_spec import load_spec
    from medprobe.preprocess import PreprocessChain

    manifest = tmp_path / "m.csv"
    pd.DataFrame({"path": ["a.nii.gz"], "subject_id": ["P0"], "label": [0]}).to_csv(manifest, index=False)
    models = [{"name": "voco_b"}, {"name": "voco_b", "alias": "voco_b_lps", "preprocessing": {"orientation": "LPS"}}]
    spec = load_spec(write_spec(manifest, models=models, data={
        "manifest": str(manifest), "modality": "ct", "preprocessing": {"spacing": [2.0, 2.0, 2.0]}}), environ={})
    encoder = load_encoder("voco_b", input_size=32)
    plain, own = (PreprocessChain(spec.data_for(m), encoder.preprocessing).describe() for m in spec.models)
    assert plain[0]["spec_overrides"] == ["spacing"] and own[0]["spec_overrides"] == ["orientation", "spacing"]
    assert {"step": "orientation", "axcodes": "RAS"} in plain and {"step": "orientation", "axcodes": "LPS"} in own
    assert {"step": "spacing", "pixdim": [2.0, 2.0, 2.0]} in own  # the shared step is kept under the model's own
    assert spec.data_for(spec.models[0]) is spec.data
