"""The metric catalogue names every metric the scorers produce, and its key grammar round-trips."""

from __future__ import annotations

import numpy as np

from medprobe.metrics import classification_metrics, regression_metrics, scored_metrics
from medprobe.metrics.bootstrap import is_interval_key
from medprobe.metrics.catalogue import (
    ANALYSIS,
    HEADLINE,
    LOWER_IS_BETTER,
    METRICS,
    PROPORTIONS,
    better,
    ci_high,
    ci_low,
    headline,
    is_derived_key,
    seed_std,
    standard_error,
)


def test_every_metric_the_scorers_produce_is_catalogued() -> None:
    rng = np.random.default_rng(0)
    y = np.tile([0, 1, 2], 10)
    proba = rng.dirichlet(np.ones(3), size=30)
    binary, _ = classification_metrics(y % 2, np.stack([proba[:, 0], 1 - proba[:, 0]], axis=1), np.array([0, 1]))
    ordinal, _ = classification_metrics(y, proba, np.array([0, 1, 2]), ordinal=True)
    produced = {name for name in (*binary, *ordinal) if "/" not in name}  # per-class AUROCs are auroc/class_<c>
    assert produced == set(METRICS["classification"])
    targets = rng.normal(size=30)
    assert set(regression_metrics(targets, targets + rng.normal(size=30))[0]) == set(METRICS["regression"])


def test_the_lists_are_drawn_from_the_catalogue() -> None:
    for task_type, names in METRICS.items():
        assert set(HEADLINE[task_type]) <= set(names) and set(ANALYSIS[task_type]) <= set(names)
    assert set(METRICS["classification"]) | set(METRICS["regression"]) >= LOWER_IS_BETTER
    assert set(METRICS["classification"]) >= PROPORTIONS
    assert better("mae") == -1.0 and better("auroc") == 1.0


def test_headline_falls_back_in_order() -> None:
    assert headline("classification", ["accuracy", "auroc"]) == "auroc"
    assert headline("classification", ["accuracy", "balanced_accuracy"]) == "balanced_accuracy"  # one class: no AUROC
    assert headline("regression", ["r2"]) == "r2"
    assert headline("regression", []) == "mae"


def test_the_scorer_writes_the_catalogue_key_grammar() -> None:
    y = np.tile([0, 1], 20)
    subjects = np.arange(40).astype(str)
    proba = np.stack([1 - y * 0.7, y * 0.7 + 0.15], axis=1)
    metrics, _ = scored_metrics(y, proba, subjects, np.array([0, 1]), n_resamples=50, seed=0)
    for name in ("auroc", "accuracy"):
        for key in (ci_low(name), ci_high(name), standard_error(name)):
            assert key in metrics and is_interval_key(key) and is_derived_key(key)
    assert is_derived_key(seed_std("auroc")) and not is_derived_key("auroc")
