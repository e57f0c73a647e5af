"""Comparing one experiment: every view `medprobe compare`, the demo and the Python API show, computed in one place.

The tables are read from the experiment's FINISHED, non-superseded runs (`protocol_runs`, `transfer_runs`,
`paired_runs`); everything else is derived from them, so the three front ends cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from medprobe.compare.analyses import paired_runs, robustness_ranking
from medprobe.compare.identity import identity_notes
from medprobe.compare.pooling import pooled_table
from medprobe.compare.table import HEADLINE_METRICS, protocol_runs, sites_side_by_side_text
from medprobe.compare.transfer import transfer_matrix, transfer_runs
from medprobe.tracking import TrackingStore


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
