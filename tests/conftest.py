"""Shared fixtures: small real files on disk, written fresh for each test that needs them."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image
from threadpoolctl import threadpool_limits

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker gets its share of the cores for torch, BLAS and the processes its tests
    start: two workers on two cores with two threads each spend their time spinning, not computing."""
    workers = int(getattr(config, "workerinput", {}).get("workercount", 0))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        for variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ.setdefault(variable, threads)  # torch (imported later) and the processes tests start
        threadpool_limits(int(os.environ["OMP_NUM_THREADS"]))  # the BLAS numpy has loaded already


def expected_seconds(item: pytest.Item) -> float:
    """What a test's `slow` mark says it takes (`slow(seconds=N)`; 10 without a figure, 0 when not slow)."""
    return max((float(mark.kwargs.get("seconds", 10)) for mark in item.iter_markers("slow")), default=0.0)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The longest tests first, so that parallel workers (`-n 2`) start them early and finish together; tests
    marked `gpu` are skipped, with the reason, where no CUDA device is visible (CI never has one)."""
    import torch

    items.sort(key=lambda item: -expected_seconds(item))  # stable: the collection order otherwise
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device; none is visible")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def write_volume(path: Path, array: np.ndarray, affine: np.ndarray | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(array, np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine)
    image.set_qform(image.affine, code=1)
    image.set_sform(image.affine, code=1)
    nib.save(image, str(path))
    return path


def blob_volume(rng: np.random.Generator, bright: bool, shape: tuple[int, int, int] = (24, 24, 16)) -> np.ndarray:
    """A noisy box with (bright=True) or without a bright cube in the middle slab: a learnable signal."""
    volume = rng.normal(100, 10, shape).astype(np.float32)
    if bright:
        c = [s // 2 for s in shape]
        volume[c[0] - 4 : c[0] + 4, c[1] - 4 : c[1] + 4, c[2] - 3 : c[2] + 3] += 150
    return volume


@pytest.fixture
def volume_dataset(tmp_path: Path) -> Callable[..., Path]:
    """Write n NIfTI volumes (half with a bright blob) and a manifest; return the manifest path."""

    def make(n: int = 16, folder: str = "data", split: bool = True, subject_prefix: str = "S") -> Path:
        rng = np.random.default_rng(0)
        root = tmp_path / folder
        rows = []
        for i in range(n):
            label = i % 2
            path = write_volume(root / f"vol{i:03d}.nii.gz", blob_volume(rng, bool(label)))
            row = {"path": path.name, "subject_id": f"{subject_prefix}{i // 2 if i < 4 else i:04d}", "label": label,
                   "age": 40.0 + i}
            rows.append(row)
        frame = pd.DataFrame(rows)
        if split:
            subjects = sorted(frame["subject_id"].unique())
            test = set(subjects[::3])
            frame["split"] = ["test" if s in test else "train" for s in frame["subject_id"]]
        manifest = root / "manifest.csv"
        frame.to_csv(manifest, index=False)
        return manifest

    return make


@pytest.fixture
def png_image(tmp_path: Path) -> Callable[..., Path]:
    def make(name: str, array: np.ndarray) -> Path:
        path = tmp_path / name
        Image.fromarray(array).save(path)
        return path

    return make


def spec_dict(manifest: Path, tmp_path: Path, **overrides: object) -> dict:
    spec = {
        "name": "unit",
        "site": "site-x",
        "data": {"manifest": str(manifest), "modality": "mri"},
        "models": [{"name": "handcrafted"}],
        "tasks": [{"name": "lesion", "target": "label", "type": "classification"}],
        # No bootstrap intervals (1000 resamples per metric by default): a test that checks them asks for them.
        "protocols": {"linear": {"bootstrap": 0}, "knn": {"k": [3, 5], "primary_k": 3, "bootstrap": 0}},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
        "workdir": str(tmp_path / "work"),
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def write_spec(tmp_path: Path) -> Callable[..., Path]:
    def make(manifest: Path, name: str = "spec.yaml", **overrides: object) -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(spec_dict(manifest, tmp_path, **overrides)), encoding="utf-8")
        return path

    return make
