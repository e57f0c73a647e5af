"""What the paired comparisons and the subgroup metrics add to a site job's probe time.

    python benchmarks/bench_comparisons.py [--subjects 2000] [--quick]

A site-job-sized evaluation, in one process: two models' synthetic embeddings (a 384-d "foundation model" and the
48-d handcrafted baseline; 2 images per subject; a 60/20/20 subject split) go through `evaluate_task` with the
default linear, k-NN and few-shot protocols (1000-resample bootstrap intervals), then `write_report` (metrics.json,
predictions, plots): together what a site job counts as its probe stage (`JobReport.seconds["probe"]`). Then, on
the same results, what the analyses cost: `paired_table` for the pair on every protocol (1000 paired resamples,
DeLong) and `subgroup_metrics` for three attributes (sex, scanner with 4 groups, age in 4 bins; 1000 resamples)
on every protocol of both models whose predictions its metrics score (few-shot's are episode means: neither
analysis runs on it). Prints the seconds of each and the analyses' share of the site job's probe stage, which
the issue bounds at 20 %, and of `evaluate_task` alone (the computation without the report's files). Label
efficiency is opt-in and refits the probe, so it is timed separately and not part of the share. `--quick`: 400 subjects.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from medprobe.evaluation import evaluate_task, write_report
from medprobe.evaluation.label_efficiency import label_efficiency
from medprobe.evaluation.options import SubgroupOptions
from medprobe.evaluation.paired import paired_table
from medprobe.evaluation.subgroups import subgroup_metrics
from medprobe.probes.registry import prediction_protocols

PROTOCOLS = ("linear", "knn", "fewshot")


def make_table(n_subjects: int, seed: int = 0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n_subjects)
    subjects = [f"sub-{i:016x}" for i in range(n_subjects)]
    table = pd.DataFrame({
        "sample_id": [f"{s}-{k}" for s in subjects for k in range(2)],
        "subject_id": np.repeat(subjects, 2),
        "split": np.repeat(rng.choice(["train", "val", "test"], p=[0.6, 0.2, 0.2], size=n_subjects), 2),
        "lesion": np.repeat(label, 2),
        "sex": np.repeat(rng.choice(["F", "M"], n_subjects), 2),
        "scanner": np.repeat(rng.choice(["GE", "Siemens", "Philips", "Canon"], n_subjects), 2),
        "age": np.repeat(rng.uniform(20, 90, n_subjects), 2),
    })
    y = table["lesion"].to_numpy()
    embeddings = {}
    for model, dim, strength in (("foundation", 384, 0.15), ("handcrafted", 48, 0.1)):
        direction = rng.normal(size=dim)
        embeddings[model] = (rng.normal(size=(len(y), dim)) + strength * np.outer(2 * y - 1, direction)
                             ).astype(np.float32)
    return table, embeddings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subjects", type=int, default=2000)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n_subjects = 400 if args.quick else args.subjects
    table, embeddings = make_table(n_subjects)
    subgroups = SubgroupOptions(columns=["sex", "scanner"], bins={"age": [20, 40, 60, 80, 120]})

    started = time.perf_counter()
    evaluations = {model: evaluate_task(table, X, "lesion", protocols=PROTOCOLS) for model, X in embeddings.items()}
    probe = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        for model, evaluation in evaluations.items():
            write_report(evaluation, Path(folder) / model)
        report = time.perf_counter() - started

    started = time.perf_counter()
    predictions = {}
    for protocol in ("linear", "knn"):  # the prediction protocols this evaluation ran
        predictions["lesion", protocol] = {
            model: e.results[protocol].predictions.assign(
                sample_id=e.rows.sample_ids[e.results[protocol].predictions["row"].to_numpy()])
            for model, e in evaluations.items()}
    paired = paired_table(predictions, {"lesion": "classification"}, [("foundation", "handcrafted")])
    paired_seconds = time.perf_counter() - started

    started = time.perf_counter()
    n_groups = 0
    for evaluation in evaluations.values():
        for protocol in prediction_protocols():
            if protocol not in evaluation.results:
                continue
            result = evaluation.results[protocol]
            n_groups += len(subgroup_metrics(result.predictions, evaluation.frame, "classification", subgroups).groups)
    subgroup_seconds = time.perf_counter() - started

    rows = evaluations["foundation"].rows
    started = time.perf_counter()
    label_efficiency(embeddings["foundation"][rows.usable], rows.labels, rows.subjects, rows.split,
                     "classification")
    curve_seconds = time.perf_counter() - started

    analyses = paired_seconds + subgroup_seconds
    print(f"{n_subjects} subjects × 2 images, 2 models, protocols {', '.join(PROTOCOLS)}")
    print(f"evaluate_task, both models                   {probe:8.2f} s")
    print(f"write_report, both models                    {report:8.2f} s")
    print(f"paired comparisons ({len(paired.table)} rows)                {paired_seconds:8.2f} s")
    print(f"subgroups (3 attributes, {n_groups} group×metric rows) {subgroup_seconds:8.2f} s")
    print(f"analyses / site job probe stage              {analyses / (probe + report):8.1%}   (bound: 20 %)")
    print(f"analyses / evaluate_task alone               {analyses / probe:8.1%}")
    print(f"label efficiency, one model (opt-in; 7 shares × 5 draws): {curve_seconds:.2f} s "
          f"= {curve_seconds / probe * 2:.1f}× one model's probe time")


if __name__ == "__main__":
    main()
