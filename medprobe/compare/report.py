"""The comparison report: `comparison.csv`, `pooled.csv` (random-effects pooling across sites, columns in
`medprobe.compare.pooling.POOLED_COLUMNS`), `paired.csv` (`site` then `medprobe.evaluation.paired.PAIRED_COLUMNS`),
`subgroups.csv` and `subgroup_gaps.csv` (site, model, task, protocol, then the columns of
`medprobe.evaluation.subgroups`; the site is an attribute too), `label_efficiency.csv`
(`medprobe.compare.analyses.CURVE_COLUMNS`), `robustness.csv` and `robustness_ranking.csv` (`ROBUSTNESS_COLUMNS`,
`RANKING_COLUMNS` there), `transfer.csv` (when sites scored each other's heads), one PNG per
figure and a self-contained `report.html`."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from medprobe.compare import plots
from medprobe.compare.analyses import curve_table, robustness_ranking, robustness_table, subgroup_tables
from medprobe.compare.identity import identity_notes
from medprobe.compare.pooling import pooled_table
from medprobe.compare.summary import summary_table
from medprobe.compare.table import (
    HEADLINE_METRICS,
    MAIN_METRICS,
    main_metric,
    sites_side_by_side_text,
    without_analyses,
)
from medprobe.compare.transfer import matrix_tables
from medprobe.metrics.catalogue import PRIMARY, ci_high, ci_low
from medprobe.metrics.plots import label_efficiency_figure, robustness_figure

#: The paired rows the HTML shows (one metric per task type); paired.csv has all.
PAIRED_SHOWN = PRIMARY


@dataclass
class ComparisonFiles:
    csv: Path
    html: Path
    figures: list[Path] = field(default_factory=list)
    transfer_csv: Path | None = None
    pooled_csv: Path | None = None
    tables: list[Path] = field(default_factory=list)  # paired, subgroups, subgroup gaps, label efficiency




def write_report(runs: pd.DataFrame, experiment: str, out: Path, matrix: pd.DataFrame | None = None,
                 pooled: pd.DataFrame | None = None, paired: pd.DataFrame | None = None) -> ComparisonFiles:
    """`matrix`: the transfer matrix's cells (`medprobe.compare.transfer.transfer_matrix`), if any; `pooled`: the
    runs' `pooled_table` when the caller has it already (else it is computed here); `paired`: the experiment's
    `medprobe.compare.analyses.paired_runs`, if any."""
    out.mkdir(parents=True, exist_ok=True)
    csv = out / "comparison.csv"
    without_analyses(runs).to_csv(csv, index=False)
    if pooled is None:
        pooled = pooled_table(runs, HEADLINE_METRICS)
    pooled_csv = out / "pooled.csv"
    pooled.to_csv(pooled_csv, index=False)
    sections: list[str] = []
    figures: list[Path] = []
    for (task, protocol), rows in runs.groupby(["task", "protocol"], sort=True):
        metric = main_metric(rows)
        if metric is None:
            continue
        images = [("heatmap", plots.heatmap(runs, metric, task, protocol)),
                  ("forest", plots.forest(runs, metric, task, protocol, pooled))]
        if protocol == "fewshot":
            images.append(("fewshot", plots.fewshot_curves(runs, task)))
        sections.append(f"<h2>{html.escape(task)} · {html.escape(protocol)} · {html.escape(metric)}</h2>"
                        + _figures(out, [(_file_name(task, protocol, kind), kind, png) for kind, png in images],
                                   figures))
    transfer_csv = None
    if matrix is not None and not matrix.empty:
        transfer_csv = out / "transfer.csv"
        matrix.to_csv(transfer_csv, index=False)
        sections.append(_transfer_section(out, matrix, figures))
    groups, gaps = subgroup_tables(runs, HEADLINE_METRICS)
    curves = curve_table(runs)
    robustness, ranking = robustness_table(runs), robustness_ranking(runs)
    tables = _write_tables(out, {"paired.csv": paired, "subgroups.csv": groups, "subgroup_gaps.csv": gaps,
                                 "label_efficiency.csv": curves, "robustness.csv": robustness,
                                 "robustness_ranking.csv": ranking})
    analyses = [_paired_section(paired), _subgroup_section(out, groups, gaps, figures),
                _curve_section(out, curves, figures), _robustness_section(out, robustness, ranking, figures)]
    table = sites_side_by_side_text(runs, HEADLINE_METRICS)
    notes = identity_notes(runs, *([matrix] if matrix is not None else []))
    page = _PAGE.format(
        title=html.escape(experiment),
        created=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        n_runs=len(runs),
        sites=html.escape(", ".join(sorted(runs["site"].unique()))),
        summary=_summary_section(summary_table(runs, pooled, paired)),
        notes="".join(f"<p><b>Note:</b> {html.escape(note)}.</p>" for note in notes),
        table=table.to_html(na_rep="–") if not table.empty else "",
        pooled=_pooled_section(pooled),
        sections="\n".join([*sections, *analyses]),
    )
    report = out / "report.html"
    report.write_text(page, encoding="utf-8")
    return ComparisonFiles(csv, report, figures, transfer_csv, pooled_csv, tables)


def _summary_section(summary: pd.DataFrame) -> str:
    """Per task, its protocols' models ranked (`medprobe.compare.summary`)."""
    blocks = []
    for task, rows in summary.groupby("task", sort=True):
        metric = ", ".join(dict.fromkeys(rows["metric"]))
        blocks.append(f"<h3>{html.escape(str(task))} ({html.escape(metric)})</h3>"
                      + rows.drop(columns=["task"]).to_html(index=False, na_rep="–"))
    return ("<h2>Summary</h2><p>Per task and protocol, the models ranked by the pooled estimate of the headline "
            "metric across sites (random effects, DerSimonian–Laird; by the mean of the sites where it could not "
            "be pooled), with I² (the share of the variation that is between sites), each site's value with its "
            "95 % subject-bootstrap interval and test subjects (n), plausibility flags (!) and the paired verdicts "
            "against each baseline on the same test subjects (Holm-corrected, 5 %). The detail follows.</p>"
            + "".join(blocks))


def _write_tables(out: Path, tables: dict[str, pd.DataFrame | None]) -> list[Path]:
    """Each non-empty table as a CSV; a stale file of an empty one is removed."""
    written = []
    for name, table in tables.items():
        path = out / name
        path.unlink(missing_ok=True)
        if table is not None and not table.empty:
            table.to_csv(path, index=False)
            written.append(path)
    return written


def _paired_section(paired: pd.DataFrame | None) -> str:
    if paired is None or paired.empty:
        return ("<h2>Model vs model (paired)</h2><p>No paired comparisons: a site job compares its models when it "
                "runs two or more, with a baseline among them (analysis.paired).</p>")
    shown = paired[paired["metric"].isin(PAIRED_SHOWN)]
    shown = shown if not shown.empty else paired
    columns = ["site", "task", "protocol", "model", "baseline", "metric", "model_value", "baseline_value",
               "difference", "ci_low", "ci_high", "p_value", "p_holm", "delong_p", "favours"]
    return ("<h2>Model vs model (paired, same test subjects)</h2><p>Difference model − baseline on the test samples "
            "both scored, with a paired subject-bootstrap 95 % interval and two-sided p-value; DeLong's test for "
            "binary AUROC. p_holm: Holm-corrected across every row of the metric in this report; favours: the "
            "side the corrected test supports at 5 %. Other metrics are in paired.csv.</p>"
            + shown[columns].to_html(index=False, float_format=lambda v: f"{v:.3g}", na_rep="–"))


def _subgroup_section(out: Path, groups: pd.DataFrame, gaps: pd.DataFrame, figures: list[Path]) -> str:
    blocks = []
    for (task, protocol, attribute), rows in groups.groupby(["task", "protocol", "attribute"], sort=True):
        metric = main_metric(rows.pivot_table(index="group", columns="metric", values="value", aggfunc="first"))
        if metric is None:
            continue
        title = f"{task} · {protocol} · {attribute} · {metric}"
        png = plots.subgroup_plot(rows[rows["metric"] == metric], title)
        blocks.append(f"<h3>{html.escape(title)}</h3>"
                      + _figures(out, [(_file_name(task, protocol, f"subgroups_{attribute}"), title, png)], figures))
    if not blocks:
        return ""
    columns = ["site", "model", "task", "protocol", "attribute", "metric", "best_group", "worst_group", "gap",
               ci_low("gap"), ci_high("gap"), "flags"]
    return ("<h2>Subgroups</h2><p>Each group's held-out value with its 95 % subject-bootstrap interval (attribute "
            "<i>site</i>: each site's value). The gap is best − worst group (worst − best for errors); within a "
            "site its interval is bootstrapped, across sites it is a normal interval from the sites' standard "
            "errors. Groups too small to score are listed in the sites' runs. <i>R² gap</i>: an R² gap outside "
            "[−1, 1], where a group whose own labels barely vary has an R² far below 0 whatever its errors; read "
            "its MAE instead.</p>"
            + gaps[columns].to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="–") + "".join(blocks))


def _curve_section(out: Path, curves: pd.DataFrame, figures: list[Path]) -> str:
    blocks = []
    for (task, model, protocol), rows in curves.groupby(["task", "model", "protocol"], sort=True):
        metric = next((m for m in MAIN_METRICS if m in set(rows["metric"])), None)
        if metric is None:
            continue
        title = f"{task} · {model} · {metric}"
        figure = label_efficiency_figure(rows[rows["metric"] == metric], title, series="site")
        png = plots.figure_png(figure) if figure is not None else None
        blocks.append(_figures(out, [(_file_name(task, model, f"label_efficiency_{protocol}"), title, png)],
                               figures))
    if not blocks:
        return ""
    return ("<h2>Label efficiency</h2><p>The linear probe refitted on a share of each site's training subjects "
            "(stratified, repeated draws): the mean over draws with a 95 % subject-bootstrap interval of the test "
            "set. Values per share are in label_efficiency.csv.</p>" + "".join(blocks))


def _pooled_section(pooled: pd.DataFrame) -> str:
    shown = pooled[pooled["method"] == "dl"]
    if shown.empty:
        return ("<h2>Pooled across sites</h2><p>Nothing to pool: it needs two or more sites that logged a metric "
                "with its bootstrap standard error.</p>")
    columns = ["task", "model", "protocol", "metric", "sites", "estimate", "ci_low", "ci_high", "pi_low", "pi_high",
               "tau2", "i2", "q_pvalue", "corrected", "left_out"]
    return ("<h2>Pooled across sites (random effects)</h2><p>DerSimonian–Laird pooled estimate of each site's "
            "held-out metric weighted by its bootstrap standard error, with its 95 % confidence interval, the 95 % "
            "prediction interval for a new site, τ² (between-site variance, on the logit scale for AUROC and "
            "accuracies), I² (share of the variation that is between sites) and Cochran's Q p-value. A site whose "
            "standard error is 0 (e.g. AUROC 1.000) is pooled with a continuity correction (<i>corrected</i>); a "
            "site that could not be pooled is named with its reason (<i>left out</i>), and a metric fewer than two "
            "sites give has a row without an estimate. Paule–Mandel rows are in pooled.csv.</p>"
            + shown[columns].to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="–"))


def _robustness_section(out: Path, table: pd.DataFrame, ranking: pd.DataFrame, figures: list[Path]) -> str:
    if table.empty:
        return ""
    blocks = []
    lines = table.assign(line=table["model"] + " @ " + table["site"])
    for (task, artefact), rows in lines[lines["severity"] > 0].groupby(["task", "artefact"], sort=True):
        metric = next((m for m in MAIN_METRICS if m in set(rows["metric"])), None)
        if metric is None:
            continue
        clean = lines[(lines["task"] == task) & (lines["severity"] == 0)]
        title = f"{task} · {artefact} · {metric}"
        figure = robustness_figure(pd.concat([clean, rows]), metric, title, series="line")
        png = plots.figure_png(figure) if figure is not None else None
        blocks.append(_figures(out, [(_file_name(task, artefact, "robustness"), title, png)], figures))
    return ("<h2>Robustness to acquisition artefacts</h2><p>Each site's test split embedded again under each "
            "artefact and severity (0: clean) and scored by the site's clean-trained linear probe head, with 95 % "
            "subject-bootstrap intervals; the ranking puts each model's clean accuracy beside its mean relative "
            "drop under the artefacts at the summary severity (mean over sites; rank 1 = most accurate, least "
            "degraded). Embedding cosines to the clean embeddings are in robustness.csv.</p>"
            + ranking.to_html(index=False, float_format=lambda v: f"{v:.3f}", na_rep="–") + "".join(blocks))


def _transfer_section(out: Path, matrix: pd.DataFrame, figures: list[Path]) -> str:
    blocks = []
    readable = matrix_tables(matrix, readable=True)
    for (model, task, metric), grid in matrix_tables(matrix).items():
        png = plots.transfer_heatmap(grid, metric, f"{task} · {model}: transfer")
        blocks.append(f"<h3>{html.escape(task)} · {html.escape(model)} · {html.escape(metric)}</h3>"
                      + readable[(model, task, metric)].to_html(na_rep="–")
                      + _figures(out, [(_file_name(task, model, "transfer"), "transfer matrix", png)], figures))
    return ("<h2>Cross-site transfer</h2><p>Rows: the site whose linear probe head was applied; columns: the site "
            "whose held-out rows it was scored on (n: its test subjects). The diagonal is each site's own linear "
            "probe. Each cell: value [95 % subject-bootstrap interval].</p>" + "".join(blocks))


def _figures(out: Path, images: list[tuple[str, str, bytes | None]], figures: list[Path]) -> str:
    """Write each (file name, alt text, PNG) that exists; return their inline <img> tags."""
    blocks = []
    for name, alt, png in images:
        if png is None:
            continue
        path = out / name
        path.write_bytes(png)
        figures.append(path)
        blocks.append(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">')
    return "".join(blocks)


def _file_name(task: str, protocol: str, kind: str) -> str:
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in f"{task}_{protocol}_{kind}")
    return f"{safe}.png"


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>medprobe comparison: {title}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right;white-space:nowrap}}
td:last-child{{white-space:normal;text-align:left}} img{{max-width:100%;margin:8px 0;display:block}}</style>
</head><body>
<h1>medprobe comparison: {title}</h1>
<p>{n_runs} protocol run(s) from site(s) {sites}; generated {created}. Values are held-out test metrics; a model
tagged random-init is a control, not an evaluation of pretrained weights.</p>
{notes}
{summary}
<h2>Sites side by side</h2>
<p>Every analysed metric: value [95 % subject-bootstrap interval], each site's test subjects (n) and its
plausibility flags; '–': the site did not run that model or protocol.</p>
{table}
{pooled}
{sections}
</body></html>
"""
