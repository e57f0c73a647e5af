"""Figures for the cross-site report: heatmaps (site × model, train × test site), a forest plot across sites,
few-shot curves, subgroup values with their intervals."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from medprobe.metrics.catalogue import LOWER_IS_BETTER, ci_high, ci_low

_SHOTS = re.compile(r"^shots(\d+)/(.+)_mean$")


def heatmap(runs: pd.DataFrame, metric: str, task: str, protocol: str) -> bytes | None:
    """Site × model values of one metric for one task and protocol."""
    rows = runs[(runs["task"] == task) & (runs["protocol"] == protocol)]
    if metric not in rows or rows[metric].isna().all():
        return None
    table = rows.pivot_table(index="model", columns="site", values=metric, aggfunc="last")
    return grid_png(table, metric, f"{task} · {protocol} · {metric}")


def transfer_heatmap(grid: pd.DataFrame, metric: str, title: str) -> bytes:
    """A train site × test site grid (`medprobe.compare.transfer.matrix_tables`); empty cells stay blank, the
    diagonal (each site's own probe) is outlined."""
    return grid_png(grid, metric, title, xlabel="test site", ylabel="train site (head)", outline_diagonal=True)


def grid_png(table: pd.DataFrame, metric: str, title: str, xlabel: str = "", ylabel: str = "",
             outline_diagonal: bool = False) -> bytes:
    """An annotated heatmap of a numeric table (a site × model grid, a transfer matrix, a model × model CKA). The
    colour scale follows the metric's direction: yellow is better (a low MAE as a high AUROC)."""
    fig = Figure(figsize=(1.6 + 1.1 * table.shape[1], 1.2 + 0.5 * table.shape[0]))
    ax = fig.add_subplot()
    values = table.to_numpy(dtype=float)
    lower_better = metric in LOWER_IS_BETTER
    image = ax.imshow(values, cmap="viridis_r" if lower_better else "viridis", aspect="auto")
    ax.set_xticks(range(table.shape[1]), table.columns, rotation=30, ha="right")
    ax.set_yticks(range(table.shape[0]), table.index)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    low, high = np.nanmin(values), np.nanmax(values)
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            share = (value - low) / (high - low) if high > low else 0.0
            bright = (1 - share if lower_better else share) > 0.6  # viridis turns yellow: dark text
            ax.text(j, i, f"{value:.3f}", ha="center", va="center", color="black" if bright else "white",
                    fontsize=8)
    if outline_diagonal:
        for i in range(min(table.shape)):
            ax.add_patch(Rectangle((i - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="white", linewidth=2))
    fig.colorbar(image, ax=ax, label=f"{metric} ({'lower' if lower_better else 'higher'} is better: yellow)")
    ax.set_title(title)
    return figure_png(fig)


def forest(runs: pd.DataFrame, metric: str, task: str, protocol: str, pooled: pd.DataFrame | None = None
           ) -> bytes | None:
    """One row per site × model: the point estimate and, when logged, its 95 % confidence interval; under each
    model's sites, when `pooled` (`medprobe.compare.pooling.pooled_table`) has it, the DerSimonian–Laird pooled
    estimate as a diamond spanning its 95 % CI and a dashed line for the 95 % prediction interval."""
    rows = runs[(runs["task"] == task) & (runs["protocol"] == protocol)].dropna(subset=[metric]) \
        if metric in runs else runs.iloc[0:0]
    if rows.empty:
        return None
    rows = rows.sort_values(["model", "site"])
    low_col, high_col = ci_low(metric), ci_high(metric)
    entries: list[tuple[str, str, float, float, float]] = []  # kind (site, pooled, prediction), label, value, CI
    for model, sites in rows.groupby("model", sort=True):
        for r in sites.itertuples():
            low = float(getattr(r, low_col)) if low_col in sites else np.nan
            high = float(getattr(r, high_col)) if high_col in sites else np.nan
            entries.append(("site", f"{model} @ {r.site}", float(getattr(r, metric)), low, high))
        estimate = _pooled_row(pooled, task, str(model), protocol, metric)
        if estimate is not None:
            entries.append(("pooled", f"{model} · pooled (I² {estimate['i2']:.0%})", estimate["estimate"],
                            estimate["ci_low"], estimate["ci_high"]))
            if np.isfinite(estimate["pi_low"]):  # three or more sites
                entries.append(("prediction", "  prediction interval", estimate["estimate"], estimate["pi_low"],
                                estimate["pi_high"]))
    fig = Figure(figsize=(6.5, 0.9 + 0.35 * len(entries)))
    ax = fig.add_subplot()
    positions = range(len(entries) - 1, -1, -1)
    for position, (kind, _, value, low, high) in zip(positions, entries, strict=True):
        interval = np.isfinite(low) and np.isfinite(high)
        if kind == "site":
            if interval:
                ax.hlines(position, low, high, color="0.4")
            ax.plot(value, position, "o", color="tab:blue")
        elif kind == "pooled":
            ax.fill([low, value, high, value], [position, position + 0.3, position, position - 0.3], color="tab:red")
        else:
            ax.hlines(position, low, high, color="tab:red", linestyles="dashed")
    ax.set_yticks(positions, [label for _, label, *_ in entries])
    ax.set_xlabel(metric)
    ax.set_title(f"{task} · {protocol}: {metric} by site, 95 % CI", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    return figure_png(fig)


def _pooled_row(pooled: pd.DataFrame | None, task: str, model: str, protocol: str, metric: str
                ) -> dict[str, float] | None:
    if pooled is None or pooled.empty:
        return None
    match = pooled[(pooled["task"] == task) & (pooled["model"] == model) & (pooled["protocol"] == protocol)
                   & (pooled["metric"] == metric) & (pooled["method"] == "dl") & pooled["estimate"].notna()]
    return None if match.empty else {k: float(match.iloc[0][k]) for k in ("estimate", "ci_low", "ci_high",
                                                                             "pi_low", "pi_high", "i2")}


def fewshot_curves(runs: pd.DataFrame, task: str, metric: str = "accuracy") -> bytes | None:
    """Metric against shots per class, one line per site × model."""
    rows = runs[(runs["task"] == task) & (runs["protocol"] == "fewshot")]
    columns = {int(m.group(1)): c for c in rows.columns if (m := _SHOTS.match(c)) and m.group(2) == metric}
    if rows.empty or not columns:
        return None
    shots = sorted(columns)
    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    for _, row in rows.iterrows():  # not itertuples: metric names such as 'shots4/accuracy_mean' are no identifiers
        ax.plot(shots, [row[columns[s]] for s in shots], marker="o", label=f"{row['model']} @ {row['site']}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(shots, [str(s) for s in shots])
    ax.set_xlabel("shots per class")
    ax.set_ylabel(f"{metric} (mean over episodes)")
    ax.set_title(f"{task}: few-shot")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return figure_png(fig)


def subgroup_plot(groups: pd.DataFrame, title: str) -> bytes | None:
    """Each group's value with its 95 % interval, one row per group and one colour per site × model (the rows of
    `medprobe.compare.analyses.subgroup_tables` for one task, protocol, attribute and metric)."""
    rows = groups.dropna(subset=["value"])
    if rows.empty:
        return None
    names = sorted(rows["group"].astype(str).unique())
    series = list(dict.fromkeys(zip(rows["site"], rows["model"], strict=True)))
    fig = Figure(figsize=(6.5, 1.4 + 0.45 * len(names) * max(1, len(series)) ** 0.5))
    ax = fig.add_subplot()
    offsets = np.linspace(-0.25, 0.25, len(series)) if len(series) > 1 else np.zeros(1)
    for offset, (site, model) in zip(offsets, series, strict=True):
        part = rows[(rows["site"] == site) & (rows["model"] == model)]
        y = np.array([names.index(str(g)) for g in part["group"]]) + offset
        value = part["value"].to_numpy(float)
        low, high = part["ci_low"].to_numpy(float), part["ci_high"].to_numpy(float)
        error = np.vstack([np.nan_to_num(value - low), np.nan_to_num(high - value)])
        label = model if site == "all" else f"{model} @ {site}"
        ax.errorbar(value, y, xerr=error, fmt="o", capsize=3, label=label)
    ax.set_yticks(range(len(names)), names)
    ax.invert_yaxis()
    ax.set_xlabel(str(rows["metric"].iloc[0]))
    ax.set_title(title)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="x")
    return figure_png(fig)


def figure_png(fig: Figure) -> bytes:
    """Any figure of the report (some are drawn by `medprobe.metrics.plots`) as PNG bytes."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()
