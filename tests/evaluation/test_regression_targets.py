"""Regression targets that are not finite numbers, or so large that their squared error overflows, are left out
with a count; a metric that overflows in a bootstrap resample gets no interval instead of a truncated one."""

from __future__ import annotations

import numpy as np
import pandas as pd

from medprobe.evaluation import evaluate_task
from medprobe.evaluation.rows import TaskRows
from medprobe.metrics.bootstrap import bootstrap_intervals


def test_infinite_nan_text_and_overflowing_targets_are_left_out_with_their_counts() -> None:
    table = pd.DataFrame({"subject_id": list("abcdefgh"),
                          "y": ["1", "inf", "nan", "-inf", "1e308", "x", None, "2.5"]})
    rows = TaskRows.of(table, "y", "regression")
    assert rows.labels.tolist() == [1.0, 2.5]
    assert rows.notes == ["2 row(s) with a non-numeric 'y' were left out",
                          "3 row(s) with a 'y' that is infinite or beyond ±1e+150 were left out (squared errors of "
                          "such values overflow)",
                          "1 row(s) without a 'y' label were left out"]


def test_a_1e308_target_leaves_the_metrics_finite() -> None:
    rng = np.random.default_rng(0)
    n = 60
    X = rng.normal(size=(n, 4))
    y = X[:, 0] * 3 + rng.normal(scale=0.1, size=n)
    y[5] = 1e308
    table = pd.DataFrame({"subject_id": [f"s{i}" for i in range(n)], "y": y})
    outcome = evaluate_task(table, X, "y", "regression", protocols=["linear"])
    metrics = outcome.results["linear"].metrics
    assert all(np.isfinite(v) for v in metrics.values()) and metrics["rmse"] < 1
    assert any("1 row(s) with a 'y' that is infinite" in note for note in outcome.notes("linear"))


def test_a_metric_that_overflows_in_a_resample_gets_no_interval_and_a_note() -> None:
    subjects = np.array([f"s{i}" for i in range(20)])
    values = np.where(np.arange(20) == 3, 1e200, 1.0)

    def scorer(W: np.ndarray) -> dict[str, np.ndarray]:
        with np.errstate(over="ignore", invalid="ignore"):  # 0 × inf for subjects a resample left out
            return {"mse": (W.T @ values**2) / W.sum(axis=0), "mean": (W.T @ np.ones(20)) / W.sum(axis=0)}

    intervals, notes = bootstrap_intervals(scorer, subjects, n_resamples=200)
    assert "mse" not in intervals and "mean" in intervals
    assert any(n.startswith("no bootstrap interval for mse: infinite (overflowed) in ") for n in notes)
