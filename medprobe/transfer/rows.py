"""Which of a site's rows a head is fitted on, and which rows another site's head is scored on.

One rule, so that every cell of the transfer matrix is a held-out number: with a `split` column a head is fitted
on the train and val rows (the rows the linear protocol fits its final model on) and scored on the test rows;
without one it is fitted on every labelled row, and another site's head is scored on every labelled row (that head
never saw them). The diagonal of the matrix is the linear protocol's own test metric, from the same test rows or
from cross-validation.
"""

from __future__ import annotations

import numpy as np

from medprobe.probes.inputs import ProbeInputs


def fit_rows(inputs: ProbeInputs) -> np.ndarray:
    """Positions (into `inputs`) a site's own head is fitted on."""
    if inputs.split is None:
        return np.arange(len(inputs.y))
    return np.flatnonzero(inputs.split != "test")


def scored_rows(inputs: ProbeInputs) -> np.ndarray:
    """Positions (into `inputs`) another site's head is scored on."""
    if inputs.split is None:
        return np.arange(len(inputs.y))
    return np.flatnonzero(inputs.split == "test")


def rows_label(inputs: ProbeInputs) -> str:
    """How `scored_rows` chose, for a run's parameters."""
    return "all labelled rows" if inputs.split is None else "test split"
