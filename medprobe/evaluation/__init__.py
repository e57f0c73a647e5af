"""Evaluate a whole embedding table for one task: every protocol, then metrics.json, predictions and plots.

`evaluate_task` is the one evaluation function: a site job, `medprobe evaluate`, the Python API and the transfer
step's rows go through it and `TaskRows`, the one rule for which rows a task uses and how they split;
`medprobe evaluate` enters through `evaluate_file`. Names load on first use (PEP 562): `TaskRows` needs no torch.
"""

from __future__ import annotations

from medprobe.lazy_exports import lazy_getattr

_WHERE = {
    "write_report": "report",
    "TaskRows": "rows",
    "EvaluationResult": "suite",
    "evaluate_and_write": "suite",
    "evaluate_file": "suite",
    "evaluate_task": "suite",
}

__all__ = sorted(_WHERE)

__getattr__ = lazy_getattr(__name__, _WHERE)
