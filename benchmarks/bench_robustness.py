"""What the robustness protocol costs: a site job with the default artefact suite against the same job without it.

    python benchmarks/bench_robustness.py [--subjects 48] [--modality mri|fundus]

Writes the demo's synthetic data, then runs the demo's site-a job (random-init DINOv2 ViT-S/14 in bf16 and the
handcrafted baseline; linear, k-NN, few-shot) twice into fresh workdirs, in one process: once as the demo runs it,
once with `protocols.robustness: {}` (the modality's whole suite at severities 1–5 on the test split). Prints both
wall times, their ratio, the robustness stage's share, and each model's table at severity 3 (headline metric of the
clean-trained head, its relative drop, the median cosine of corrupted to clean embeddings).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from medprobe.demo.runner import FUNDUS_PIPELINE, MRI_PIPELINE, demo_spec
from medprobe.demo.synthetic import write_demo_dataset
from medprobe.jobs import run_job
from medprobe.pipeline_spec import load_spec


def run(folder: Path, manifest: Path, modality: str, robustness: bool) -> tuple[float, object]:
    tasks = [("lesion", "lesion", "classification")]
    if modality == "mri":
        tasks.append(("age", "age", "regression"))
    spec = demo_spec(MRI_PIPELINE if modality == "mri" else FUNDUS_PIPELINE, "site-a", str(manifest), modality, tasks,
                     f"sqlite:///{folder / 'mlflow.db'}", str(folder / "work"), None, robustness)
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    started = time.perf_counter()
    report = run_job(load_spec(path, environ={}), progress=False, say=lambda _: None)
    return time.perf_counter() - started, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=48)
    parser.add_argument("--modality", choices=("mri", "fundus"), default="mri")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="medprobe-bench-robustness-"))
    site = write_demo_dataset(root, n_subjects=args.subjects).sites[0]
    manifest = site.mri_manifest if args.modality == "mri" else site.fundus_manifest
    # Plain folder names: a job refuses to log text that names a folder of its own paths (the path guard), and
    # words such as "robust" occur in model cards.
    (root / "run1").mkdir()
    (root / "run2").mkdir()
    plain, _ = run(root / "run1", manifest, args.modality, robustness=False)
    robust, report = run(root / "run2", manifest, args.modality, robustness=True)
    stage = report.seconds.get("robustness", 0.0)
    print(f"demo {args.modality} job, site-a, {args.subjects} subjects, 2 models; default suite, severities 1-5")
    print(f"  without robustness {plain:7.1f} s")
    print(f"  with robustness    {robust:7.1f} s   ratio {robust / plain:.2f}x   (robustness stage {stage:.1f} s)")
    for model, task, result in report.robustness:
        table = result.table[(result.table["metric"] == result.headline)
                             & result.table["severity"].isin([0, result.summary_severity])]
        print(f"\n{model} · {task}: {result.headline} at severity {result.summary_severity} "
              f"(mean relative drop {result.summary:+.1%})")
        for row in table.to_dict("records"):
            print(f"  {row['artefact']:<20} {row['value']:8.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]  "
                  f"drop {row['drop']:+7.1%}  cosine median {row['cosine_median']:.4f}")


if __name__ == "__main__":
    main()
