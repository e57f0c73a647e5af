"""Cross-site comparison: tables over the runs of an experiment, the transfer matrix, figures and the HTML report."""

from medprobe.compare.analyses import curve_table, paired_runs, robustness_ranking, robustness_table, subgroup_tables
from medprobe.compare.experiment import ExperimentComparison, compare_experiment, save_ui_view
from medprobe.compare.identity import identity_notes, model_labels
from medprobe.compare.pooling import PooledEstimate, pool_sites, pooled_table
from medprobe.compare.report import ComparisonFiles, write_report
from medprobe.compare.table import HEADLINE_METRICS, protocol_runs, sites_side_by_side, sites_side_by_side_text
from medprobe.compare.transfer import matrix_tables, matrix_title, transfer_matrix, transfer_runs

__all__ = [
    "HEADLINE_METRICS",
    "ComparisonFiles",
    "ExperimentComparison",
    "PooledEstimate",
    "compare_experiment",
    "curve_table",
    "identity_notes",
    "matrix_tables",
    "matrix_title",
    "model_labels",
    "paired_runs",
    "pool_sites",
    "pooled_table",
    "protocol_runs",
    "robustness_ranking",
    "robustness_table",
    "save_ui_view",
    "sites_side_by_side",
    "sites_side_by_side_text",
    "subgroup_tables",
    "transfer_matrix",
    "transfer_runs",
    "write_report",
]
