"""Paired model comparisons: is model A better than model B on the same test subjects?

Two models evaluated by the same protocol on the same rows give correlated estimates, so their intervals
overlapping says little. A pair is compared on the test samples both scored (joined on `sample_id`):

- every metric of the catalogue's `ANALYSIS` for the difference model − baseline, with a paired subject-bootstrap 95 %
  percentile interval (each resample draws subjects with replacement and scores both models on the same rows) and
  a two-sided bootstrap p-value, 2 · min(P*(d ≤ 0), P*(d ≥ 0)) with the +1 correction of Davison & Hinkley
  (1997, §4.4) so it is never 0;
- for binary AUROC also DeLong's test (`medprobe.metrics.delong`), which treats samples as independent: with
  several images per subject the bootstrap is the subject-level answer;
- p-values corrected for multiple comparisons by Holm across the rows of one metric in the table shown
  (`holm_corrected`), and `favours` names the side the corrected test supports at the 5 % level.

For MAE and RMSE a negative difference favours the model (lower is better).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medprobe.evaluation.scorers import ScoredPredictions
from medprobe.evaluation.suite import EvaluationResult
from medprobe.metrics.bootstrap import bootstrap_values, defined_resamples, percentile_interval
from medprobe.metrics.catalogue import ANALYSIS, LOWER_IS_BETTER
from medprobe.metrics.delong import delong_test
from medprobe.metrics.multiplicity import holm
from medprobe.options import N_RESAMPLES
from medprobe.probes.registry import prediction_protocols

ALPHA = 0.05
#: `paired.csv`: one row per task × protocol × (model, baseline) × metric.
PAIRED_COLUMNS = ("task", "protocol", "model", "baseline", "metric", "n_subjects", "n_samples", "model_value",
                  "baseline_value", "difference", "ci_low", "ci_high", "p_value", "p_holm", "delong_z", "delong_p",
                  "delong_p_holm", "favours")


@dataclass
class PairedComparison:
    """`table` has `PAIRED_COLUMNS`; `notes` say which pairs could not be compared, and why."""

    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def comparison_pairs(models: Sequence[str], baselines: Sequence[str], every_pair: bool = False
                     ) -> list[tuple[str, str]]:
    """(model, baseline) pairs: every model against each baseline (two baselines are compared once, the one listed
    first being the baseline), or with `every_pair` every pair in the order given."""
    if every_pair:
        return [(a, b) for i, a in enumerate(models) for b in models[i + 1:]]
    pairs: list[tuple[str, str]] = []
    for baseline in baselines:
        for model in models:
            if model != baseline and (baseline, model) not in pairs:
                pairs.append((model, baseline))
    return pairs


def compare_pair(model: pd.DataFrame, baseline: pd.DataFrame, task_type: str, n_resamples: int = N_RESAMPLES,
                 seed: int = 0) -> tuple[list[dict[str, float | int | str]], list[str]]:
    """One row per metric (without the task, protocol, model and Holm columns) for two predictions frames with a
    `sample_id` column; notes for what could not be compared."""
    joined = model.merge(baseline, on="sample_id", suffixes=("", "__baseline"))
    notes = []
    if len(joined) < max(len(model), len(baseline)):
        notes.append(f"compared on the {len(joined)} test samples both models scored "
                     f"(of {len(model)} and {len(baseline)})")
    same_label = (joined["y_true"].astype(str) == joined["y_true__baseline"].astype(str)).to_numpy()
    if not same_label.all():
        notes.append(f"{int((~same_label).sum())} sample(s) carry different labels in the two models' predictions "
                     "and were left out: the rows do not line up (check the tables' sample_id)")
        joined = joined[same_label]
    if len(joined) == 0:
        return [], [*notes, "no test sample scored by both models"]
    a = ScoredPredictions.of(_side(joined, ""), task_type)
    b = ScoredPredictions.of(_side(joined, "__baseline"), task_type)
    if a.classes != b.classes:
        return [], [*notes, f"the models were trained on different classes ({a.classes} vs {b.classes})"]
    metrics = ANALYSIS[task_type]
    point_a, point_b = a.point(metrics), b.point(metrics)
    differences = _resampled_differences(a, b, metrics, n_resamples, seed)
    delong, delong_notes = _delong(a, b)
    notes += delong_notes
    rows: list[dict[str, float | int | str]] = []
    for metric in metrics:
        if not (np.isfinite(point_a[metric]) and np.isfinite(point_b[metric])):
            continue
        low, high, p_value = _interval_and_p(differences.get(metric), n_resamples)
        rows.append({
            "metric": metric, "n_subjects": len(np.unique(a.subjects)), "n_samples": len(a),
            "model_value": point_a[metric], "baseline_value": point_b[metric],
            "difference": point_a[metric] - point_b[metric], "ci_low": low, "ci_high": high, "p_value": p_value,
            **(delong if metric == "auroc" else {}),
        })
    return rows, notes


def paired_table(predictions: Mapping[tuple[str, str], Mapping[str, pd.DataFrame]], task_types: Mapping[str, str],
                 pairs: Sequence[tuple[str, str]], n_resamples: int = N_RESAMPLES, seed: int = 0) -> PairedComparison:
    """Every pair on every (task, protocol) of `predictions` ((task, protocol) → model → predictions frame with
    `sample_id`) where both models have predictions; Holm-corrected across the table."""
    rows: list[dict[str, float | int | str]] = []
    notes: list[str] = []
    for (task, protocol), by_model in predictions.items():
        for model, baseline in pairs:
            missing = [m for m in (model, baseline) if m not in by_model or by_model[m].empty]
            if missing:
                if len(missing) < 2:
                    notes.append(f"{task}/{protocol} {model} vs {baseline}: not compared, {missing[0]} has no test "
                                 "predictions")
                continue
            found, pair_notes = compare_pair(by_model[model], by_model[baseline], task_types[task], n_resamples, seed)
            rows += [{"task": task, "protocol": protocol, "model": model, "baseline": baseline, **row} for row in found]
            notes += [f"{task}/{protocol} {model} vs {baseline}: {note}" for note in pair_notes]
    return PairedComparison(holm_corrected(pd.DataFrame(rows)), notes)


def compare_evaluations(evaluations: Mapping[str, Mapping[str, EvaluationResult]], pairs: Sequence[tuple[str, str]],
                        n_resamples: int = N_RESAMPLES, seed: int = 0) -> PairedComparison:
    """`paired_table` for evaluations of the same rows (task name → model → `evaluate_task` result), on the
    protocols whose predictions their metrics score (`scores_predictions` in the protocol registry)."""
    scored = prediction_protocols()
    predictions = {
        (task, protocol): {model: _with_sample_ids(evaluation, protocol) for model, evaluation in by_model.items()
                           if protocol in evaluation.results}
        for task, by_model in evaluations.items()
        for protocol in dict.fromkeys(p for e in by_model.values() for p in e.results if p in scored)
    }
    task_types = {task: next(iter(by_model.values())).task_type for task, by_model in evaluations.items() if by_model}
    return paired_table(predictions, task_types, pairs, n_resamples, seed)


def _with_sample_ids(evaluation: EvaluationResult, protocol: str) -> pd.DataFrame:
    predictions = evaluation.results[protocol].predictions
    if predictions.empty:
        return predictions
    return predictions.assign(sample_id=evaluation.rows.sample_ids[predictions["row"].to_numpy()])


def holm_corrected(table: pd.DataFrame) -> pd.DataFrame:
    """`table` with `p_holm` and `delong_p_holm` (Holm across the rows of each metric) and `favours`, in the column
    order of `PAIRED_COLUMNS`."""
    table = table.reindex(columns=list(PAIRED_COLUMNS)).reset_index(drop=True)
    if table.empty:
        return table
    for raw, corrected in (("p_value", "p_holm"), ("delong_p", "delong_p_holm")):
        table[corrected] = np.nan
        for _, rows in table.groupby("metric"):
            table.loc[rows.index, corrected] = holm(rows[raw].to_numpy(np.float64))
    difference = table["difference"].astype(np.float64)
    significant = (table["p_holm"] < ALPHA) & (difference != 0)
    model_better = np.where(table["metric"].isin(LOWER_IS_BETTER), difference < 0, difference > 0)
    table["favours"] = np.where(significant, np.where(model_better, table["model"], table["baseline"]), "")
    return table


def _side(joined: pd.DataFrame, suffix: str) -> pd.DataFrame:
    """One model's columns of a joined frame under their own names: the model's have no suffix."""
    if suffix:
        columns = {c: c.removesuffix(suffix) for c in joined.columns if c.endswith(suffix)}
    else:
        columns = {c: c for c in joined.columns if not c.endswith("__baseline")}
    return joined[list(columns)].rename(columns=columns)


def _resampled_differences(a: ScoredPredictions, b: ScoredPredictions, metrics: tuple[str, ...], n_resamples: int,
                           seed: int) -> dict[str, np.ndarray]:
    if n_resamples < 1 or len(np.unique(a.subjects)) < 2:
        return {}
    score_a, score_b = a.scorer(metrics), b.scorer(metrics)

    def difference(W: np.ndarray) -> dict[str, np.ndarray]:
        first, second = score_a(W), score_b(W)
        return {name: first[name] - second[name] for name in first if name in second}
    return bootstrap_values(difference, a.subjects, n_resamples, seed)


def _interval_and_p(values: np.ndarray | None, n_resamples: int) -> tuple[float, float, float]:
    """Percentile interval and two-sided p-value of resampled differences; NaN when most resamples lack it."""
    if values is None:
        return np.nan, np.nan, np.nan
    finite = defined_resamples(values, n_resamples)
    if finite is None:
        return np.nan, np.nan, np.nan
    low, high = percentile_interval(finite)
    below = (np.count_nonzero(finite <= 0) + 1) / (len(finite) + 1)
    above = (np.count_nonzero(finite >= 0) + 1) / (len(finite) + 1)
    return low, high, float(min(1.0, 2 * min(below, above)))


def _delong(a: ScoredPredictions, b: ScoredPredictions) -> tuple[dict[str, float], list[str]]:
    """DeLong's z and p for binary AUROC (positive class: the second trained class, as the metrics use); nothing,
    with a note, when the test rows lack the two positives and two negatives its variance needs."""
    if a.task_type != "classification" or len(a.classes) != 2:
        return {}, []
    positive = a.y_true == 1
    if positive.sum() < 2 or (~positive).sum() < 2:
        return {}, [f"no DeLong test: {int(positive.sum())} positive and {int((~positive).sum())} negative test "
                    "samples (it needs two of each)"]
    try:
        test = delong_test(positive, a.outputs[:, 1], b.outputs[:, 1])
    except ValueError as exc:
        return {}, [f"no DeLong test: {exc}"]
    return {"delong_z": test.z, "delong_p": test.p_value}, []
