"""The metric catalogue: for each task type, which metric heads a table, which the analyses and curves report, which
way each metric improves and what range it lives in, and the grammar of the keys derived from a metric's name.

Every table, plot, report, MLflow key and the federated path reads these names from here, so that "the headline"
or "better" means the same thing in the job's output, `medprobe compare`, the HTML report and the MLflow UI.
"""

from __future__ import annotations

from collections.abc import Iterable

CLASSIFICATION_METRICS = ("auroc", "balanced_accuracy", "accuracy", "auprc", "f1_macro", "kappa", "kappa_quadratic",
                          "sensitivity", "specificity", "ece")
REGRESSION_METRICS = ("mae", "rmse", "r2", "pearson_r")
METRICS = {"classification": CLASSIFICATION_METRICS, "regression": REGRESSION_METRICS}

#: The headline of a task type: the first of these a result has (a single-class test set has no AUROC).
HEADLINE = {"classification": ("auroc", "balanced_accuracy", "accuracy"), "regression": ("mae", "r2")}
#: What the paired comparisons, subgroups and robustness report per task type.
ANALYSIS = {"classification": ("auroc", "balanced_accuracy", "accuracy"), "regression": ("mae", "rmse", "r2")}
#: Both task types' headline candidates, in order: what the job's tables and the label-efficiency curves show, and
#: the first of which present is the metric of a comparison's figure.
SHOWN = tuple(name for names in HEADLINE.values() for name in names)
#: Both task types' analysis metrics: the rows of the side-by-side tables and of pooling across sites.
ANALYSED = tuple(name for names in ANALYSIS.values() for name in names)
#: One metric per task type, the first headline: what the HTML report shows of the paired comparisons.
PRIMARY = tuple(names[0] for names in HEADLINE.values())
#: Metrics for which a smaller value is better; every other metric is better larger.
LOWER_IS_BETTER = frozenset({"mae", "rmse", "ece"})
#: Metrics that are proportions in [0, 1] (pooled across sites on the logit scale).
PROPORTIONS = frozenset({"auroc", "accuracy", "balanced_accuracy", "sensitivity", "specificity", "auprc"})

#: Suffixes of keys derived from a metric: its 95 % interval, its standard error, its spread over seeds.
CI_LOW, CI_HIGH, SE, SEED_STD = "_ci_low", "_ci_high", "_se", "_seed_std"


def ci_low(name: str) -> str:
    return f"{name}{CI_LOW}"


def ci_high(name: str) -> str:
    return f"{name}{CI_HIGH}"


def standard_error(name: str) -> str:
    return f"{name}{SE}"


def seed_std(name: str) -> str:
    return f"{name}{SEED_STD}"


def is_derived_key(key: str) -> bool:
    """True for an interval bound, a standard error or a seed spread (not a metric of its own)."""
    return key.endswith((CI_LOW, CI_HIGH, SE, SEED_STD))


def headline(task_type: str, available: Iterable[str]) -> str:
    """The headline metric of a result with metrics `available` (the task type's first when it has none)."""
    present = set(available)
    return next((name for name in HEADLINE[task_type] if name in present), HEADLINE[task_type][0])


def better(metric: str) -> float:
    """+1 when larger values of `metric` are better, -1 when smaller are."""
    return -1.0 if metric in LOWER_IS_BETTER else 1.0
