"""Comparing one experiment: every view `medprobe compare`, the demo and the Python API show, computed in one place.

The tables are read from the experiment's FINISHED, non-superseded runs (`protocol_runs`, `transfer_runs`,
`paired_runs`); everything else is derived from them, so the three front ends cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
from mlflow.exceptions import MlflowException

from medprobe.compare.analyses import paired_runs, robustness_ranking
from medprobe.compare.identity import identity_notes
from medprobe.compare.pooling import pooled_table
from medprobe.compare.table import HEADLINE_METRICS, experiment_id, protocol_runs, sites_side_by_side_text
from medprobe.compare.transfer import transfer_matrix, transfer_runs
from medprobe.metrics.catalogue import SHOWN
from medprobe.tracking import TrackingStore
from medprobe.tracking.ui_view import save_sites_view


@dataclass(frozen=True)
class ExperimentComparison:
    """`runs`: one row per site × model × task × protocol with its metrics; `side_by_side`: the analysed metrics
    with the sites as columns, each cell `value [95 % CI]`, and each site's test subjects; `pooled`: the
    random-effects pooling across sites; `paired`: model-vs-baseline comparisons; `robustness`: the robustness
    ranking; `matrix`: the cross-site transfer cells; `notes`: where models with one name differ in weights or
    architecture."""

    experiment: str
    runs: pd.DataFrame
    transfers: pd.DataFrame
    side_by_side: pd.DataFrame
    pooled: pd.DataFrame
    paired: pd.DataFrame
    robustness: pd.DataFrame
    matrix: pd.DataFrame
    notes: list[str]


def save_ui_view(store: TrackingStore, comparison: ExperimentComparison) -> str | None:
    """The experiment's MLflow UI view of the protocol runs by site (`medprobe.tracking.ui_view`), with the headline
    metrics the runs have as columns; its address in the UI, or None when the store refused the tags (read-only)."""
    metrics = [name for name in SHOWN if name in comparison.runs.columns]
    try:
        return save_sites_view(store, experiment_id(store, comparison.experiment), metrics)
    except MlflowException:
        return None


def compare_experiment(store: TrackingStore, experiment: str) -> ExperimentComparison:
    """Every comparison view of `experiment` in `store`; empty frames when it has no protocol runs."""
    runs = protocol_runs(store, experiment)
    transfers = transfer_runs(store, experiment)
    return ExperimentComparison(
        experiment=experiment,
        runs=runs,
        transfers=transfers,
        side_by_side=sites_side_by_side_text(runs),
        pooled=pooled_table(runs, HEADLINE_METRICS) if not runs.empty else pd.DataFrame(),
        paired=paired_runs(store, experiment),
        robustness=robustness_ranking(runs),
        matrix=transfer_matrix(runs, transfers),
        notes=identity_notes(runs, transfers),
    )
