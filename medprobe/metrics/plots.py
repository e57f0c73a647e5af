"""Plots of pooled predictions: ROC curves, confusion matrix, reliability diagram, metric against shots and against
the share of training subjects (PNG)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from medprobe.metrics.catalogue import ci_high, ci_low
from medprobe.metrics.classification import encode_labels
from medprobe.metrics.weighted import ECE_BINS


def roc_plot(path: Path, y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray, title: str) -> bool:
    """One-vs-rest ROC per class (the positive class only for two); False (nothing written) if none is defined."""
    codes = encode_labels(y_true, classes)
    columns = [1] if len(classes) == 2 else range(len(classes))
    figure = Figure(figsize=(4.5, 4.5))
    axes = figure.add_subplot()
    drawn = 0
    for column in columns:
        positive = codes == column
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = roc_curve(positive, proba[:, column])
        axes.plot(fpr, tpr, label=str(classes[column]))
        drawn += 1
    if drawn:
        axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
        _finish(axes, "false positive rate", "true positive rate", title, legend=drawn <= 12)
        figure.savefig(path, dpi=100, bbox_inches="tight")
    return bool(drawn)


def confusion_plot(path: Path, y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray, title: str) -> None:
    """Counts of true (rows) against predicted (columns) classes; test labels unseen in training get a row."""
    labels = list(np.asarray(classes).tolist())
    labels += [label for label in np.unique(y_true).tolist() if label not in labels]
    index = {label: position for position, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(classes)), dtype=np.int64)
    np.add.at(matrix, ([index[v] for v in np.asarray(y_true).tolist()],
                       [index[v] for v in np.asarray(y_pred).tolist()]), 1)
    size = 2.5 + 0.4 * len(labels)
    figure = Figure(figsize=(size, size))
    axes = figure.add_subplot()
    axes.imshow(matrix, cmap="Blues")
    if len(labels) <= 20:
        for (row, column), count in np.ndenumerate(matrix):
            axes.text(column, row, str(count), ha="center", va="center", fontsize=8)
    axes.set_xticks(range(len(classes)), [str(c) for c in classes], rotation=45, ha="right")
    axes.set_yticks(range(len(labels)), [str(c) for c in labels])
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    figure.savefig(path, dpi=100, bbox_inches="tight")


def reliability_plot(path: Path, y_true: np.ndarray, proba: np.ndarray, classes: np.ndarray, title: str) -> None:
    """Accuracy against top-class confidence in the 15 bins of the ECE; bar width shows the bin."""
    codes = encode_labels(y_true, classes)
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == codes
    bins = np.clip(np.ceil(confidence * ECE_BINS).astype(int) - 1, 0, ECE_BINS - 1)
    counts = np.bincount(bins, minlength=ECE_BINS)
    hits = np.bincount(bins, weights=correct, minlength=ECE_BINS)
    centres = (np.arange(ECE_BINS) + 0.5) / ECE_BINS
    figure = Figure(figsize=(4.5, 4.5))
    axes = figure.add_subplot()
    filled = counts > 0
    axes.bar(centres[filled], hits[filled] / counts[filled], width=1 / ECE_BINS, edgecolor="black", alpha=0.7)
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    _finish(axes, "confidence (top class)", "accuracy", title, legend=False)
    figure.savefig(path, dpi=100, bbox_inches="tight")


def shots_plot(path: Path, metrics: Mapping[str, float], title: str) -> bool:
    """Few-shot accuracy (mean and interval over episodes) against shots per class, one line per classifier."""
    figure = Figure(figsize=(5, 4))
    axes = figure.add_subplot()
    drawn = False
    for prefix, label in (("", "SimpleShot"), ("linear_", "ridge classifier")):
        shots = sorted(int(name.split("/")[0][5:]) for name in metrics
                       if name.startswith("shots") and name.endswith(f"/{prefix}accuracy_mean"))
        if not shots:
            continue
        mean = [metrics[f"shots{k}/{prefix}accuracy_mean"] for k in shots]
        low = [metrics[ci_low(f"shots{k}/{prefix}accuracy")] for k in shots]
        high = [metrics[ci_high(f"shots{k}/{prefix}accuracy")] for k in shots]
        axes.plot(shots, mean, marker="o", label=label)
        axes.fill_between(shots, low, high, alpha=0.2)
        drawn = True
    if drawn:
        axes.set_xscale("log", base=2)
        _finish(axes, "shots per class (subjects)", "accuracy", title, legend=True, square=False)
        figure.savefig(path, dpi=100, bbox_inches="tight")
    return drawn


def label_efficiency_plot(path: Path, curve: pd.DataFrame, title: str, series: str = "metric") -> bool:
    """`label_efficiency_figure` written to `path`; False (nothing written) if there is nothing to draw."""
    figure = label_efficiency_figure(curve, title, series)
    if figure is not None:
        figure.savefig(path, dpi=100, bbox_inches="tight")
    return figure is not None


def label_efficiency_figure(curve: pd.DataFrame, title: str, series: str = "metric") -> Figure | None:
    """Value (with its interval) against the number of training subjects, one line per value of `series` (a
    metric, or a site in `medprobe compare`), on a log axis. Shares that round to the same number of subjects (1 %,
    2 % and 5 % of 40 are all 2) are one point, the largest share's, so the axis never repeats a count."""
    curve = curve.dropna(subset=["value", "n_subjects"])
    if curve.empty:
        return None
    figure = Figure(figsize=(5.5, 4))
    axes = figure.add_subplot()
    curve = curve.sort_values("percent").drop_duplicates([series, "n_subjects"], keep="last")
    for name, line in curve.groupby(series, sort=True):
        axes.plot(line["n_subjects"], line["value"], marker="o", label=str(name))
        axes.fill_between(line["n_subjects"], line["ci_low"], line["ci_high"], alpha=0.2)
    counts = sorted(curve["n_subjects"].unique())
    axes.set_xscale("log")
    axes.set_xticks(counts, [f"{c:g}" for c in counts])
    axes.minorticks_off()
    _finish(axes, "training subjects", "held-out value", title, legend=True, square=False)
    return figure


def robustness_plot(path: Path, table: pd.DataFrame, metric: str, title: str) -> bool:
    """`metric` against severity, one line per artefact starting from the clean value at severity 0, with the 95 %
    interval as a band (the rows of `medprobe.jobs.robustness_scoring.COLUMNS`); False if there is nothing to draw."""
    figure = robustness_figure(table, metric, title, series="artefact")
    if figure is not None:
        figure.savefig(path, dpi=100, bbox_inches="tight")
    return figure is not None


def robustness_figure(table: pd.DataFrame, metric: str, title: str, series: str) -> Figure | None:
    """As `robustness_plot`; `series` names the column that tells the lines apart (artefact, site or model) when
    the table holds one artefact, as in `medprobe compare`."""
    rows = table[table["metric"] == metric].dropna(subset=["value"])
    clean = rows[rows["severity"] == 0]
    rows = rows[rows["severity"] > 0]
    if rows.empty:
        return None
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    for name, line in rows.groupby(series, sort=True):
        start = clean if series == "artefact" else clean[clean[series] == name]
        line = pd.concat([start.head(1), line]).sort_values("severity")
        axes.plot(line["severity"], line["value"], marker="o", label=str(name))
        axes.fill_between(line["severity"], line["ci_low"], line["ci_high"], alpha=0.12)
    axes.set_xticks(sorted({0, *rows["severity"].unique()}))
    _finish(axes, "severity (0: clean)", metric, title, legend=True, square=False)
    return figure


def _finish(axes: Axes, xlabel: str, ylabel: str, title: str, legend: bool, square: bool = True) -> None:
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    if square:
        axes.set_xlim(0, 1)
        axes.set_ylim(0, 1.02)
    if legend:
        axes.legend(fontsize=8, loc="lower right")
