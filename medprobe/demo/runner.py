"""`medprobe demo`: synthetic two-site data as real files, both sites' jobs, the transfer step of the site that ran
first (the second site's job already scored the first site's heads), and the comparison with the transfer matrix."""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from medprobe.compare import compare_experiment, save_ui_view
from medprobe.demo.synthetic import DemoSite, write_demo_dataset
from medprobe.jobs import JobReport, run_job, run_transfer
from medprobe.pipeline_spec import load_spec
from medprobe.tracking import TrackingStore

MRI_PIPELINE = "demo-brain-mri"
#: Age groups of the demo's subgroup analysis (years; left-closed).
AGE_BINS = (20, 45, 65, 120)
FUNDUS_PIPELINE = "demo-fundus"


@dataclass
class DemoResult:
    tracking_uri: str
    experiments: list[str]
    reports: list[JobReport]
    tables: dict[str, pd.DataFrame]
    matrices: dict[str, pd.DataFrame]  # experiment → transfer matrix cells (`medprobe.compare.transfer_matrix`)
    pooled: dict[str, pd.DataFrame] = field(default_factory=dict)  # experiment → `medprobe.compare.pooled_table`
    paired: dict[str, pd.DataFrame] = field(default_factory=dict)  # experiment → `medprobe.compare.paired_runs`
    robustness: dict[str, pd.DataFrame] = field(default_factory=dict)  # experiment → `robustness_ranking`
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    views: dict[str, str] = field(default_factory=dict)  # experiment → its MLflow UI view (`save_ui_view`)

    @property
    def exit_code(self) -> int:
        return max((r.exit_code for r in self.reports), default=0)


def run_demo(out: Path, n_subjects: int = 48, progress: bool = True, say: Callable[[str], None] = print,
             robustness: bool = False) -> DemoResult:
    """`robustness` adds the robustness protocol (each modality's whole artefact suite, five severities) to every
    job."""
    out = out.resolve()
    started = time.perf_counter()
    say(f"writing a synthetic two-site dataset to {out / 'data'}")
    dataset = write_demo_dataset(out, n_subjects=n_subjects)
    tracking_uri = f"sqlite:///{out / 'mlflow.db'}"  # what the specs' relative 'sqlite:///../mlflow.db' resolves to
    seconds: dict[str, float] = defaultdict(float)
    seconds["generate"] = time.perf_counter() - started
    reports = []
    first_site_specs = []
    for site in dataset.sites:
        for spec_path in _write_specs(out, site, robustness):
            say(f"running {spec_path.name}")
            spec = load_spec(spec_path, environ={})
            report = run_job(spec, progress=progress, say=say)
            reports.append(report)
            for stage, value in report.seconds.items():
                seconds[stage] += value
            if site == dataset.sites[0]:
                first_site_specs.append(spec_path)
    started = time.perf_counter()
    for spec_path in first_site_specs:  # its job ran before the other site had published any head
        say(f"transfer step of {spec_path.name}")
        run_transfer(load_spec(spec_path, environ={}), say=say)
    seconds["transfer"] += time.perf_counter() - started
    started = time.perf_counter()
    store = TrackingStore(tracking_uri)
    experiments = [f"medprobe/{MRI_PIPELINE}", f"medprobe/{FUNDUS_PIPELINE}"]
    comparisons = {name: compare_experiment(store, name) for name in experiments}
    views = {name: view for name, comparison in comparisons.items() if (view := save_ui_view(store, comparison))}
    seconds["compare"] = time.perf_counter() - started
    return DemoResult(tracking_uri, experiments, reports, {n: c.side_by_side for n, c in comparisons.items()},
                      {n: c.matrix for n, c in comparisons.items()}, {n: c.pooled for n, c in comparisons.items()},
                      {n: c.paired for n, c in comparisons.items()}, {n: c.robustness for n, c in comparisons.items()},
                      seconds, views)


def _write_specs(out: Path, site: DemoSite, robustness: bool) -> list[Path]:
    """Specs with paths relative to their own folder, so the demo folder can be moved or mounted elsewhere."""
    folder = out / "pipelines"
    folder.mkdir(parents=True, exist_ok=True)

    def rel(path: Path) -> str:
        return os.path.relpath(path, folder)

    mri_tasks = [("lesion", "lesion", "classification"), ("age", "age", "regression")]
    tracking = f"sqlite:///{rel(out / 'mlflow.db')}"
    mri_subgroups = {"columns": ["sex"], "bins": {"age": list(AGE_BINS)}}
    specs = {
        f"{site.name}-brain-mri.yaml": demo_spec(MRI_PIPELINE, site.name, rel(site.mri_manifest), "mri", mri_tasks,
                                                 tracking, rel(out / "work" / site.name / MRI_PIPELINE),
                                                 mri_subgroups, robustness),
        f"{site.name}-fundus.yaml": demo_spec(FUNDUS_PIPELINE, site.name, rel(site.fundus_manifest), "fundus",
                                              [("lesion", "lesion", "classification")], tracking,
                                              rel(out / "work" / site.name / FUNDUS_PIPELINE), {"columns": ["sex"]},
                                              robustness),
    }
    paths = []
    for name, spec in specs.items():
        path = folder / name
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
        paths.append(path)
    return paths


def demo_spec(pipeline: str, site: str, manifest: str, modality: str, tasks: list[tuple[str, str, str]],
              tracking_uri: str, workdir: str, subgroups: dict[str, Any] | None = None,
              robustness: bool = False) -> dict[str, Any]:
    """The demo's job spec: a random-init DINOv2 ViT-S/14 (bf16, fast on CPU) and the handcrafted baseline, compared
    pairwise, with `subgroups` and the linear probe's label-efficiency curve (three draws per share)."""
    return {
        "name": pipeline,
        "site": site,
        "data": {
            "manifest": manifest,
            "modality": modality,
            "preprocessing": {"volume_to_2d": {"strategy": "slices", "axis": "axial", "n": 3, "extent": 0.15}},
        },
        "models": [
            {"name": "dinov2_vits14", "precision": "bf16", "batch_size": 32},
            {"name": "handcrafted"},
        ],
        "tasks": [{"name": n, "target": t, "type": kind} for n, t, kind in tasks],
        "protocols": {"linear": {}, "knn": {"k": [5, 10, 20], "primary_k": 10}, "fewshot": {"shots": [1, 2, 4]},
                      **({"robustness": {}} if robustness else {})},
        "analysis": {"subgroups": subgroups, "label_efficiency": {"repeats": 3}} if subgroups else {},
        "tracking": {"uri": tracking_uri},
        "workdir": workdir,
    }
