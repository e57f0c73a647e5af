"""Which of a site's rows a head is fitted on, and which rows another site's head is scored on.

One rule (`medprobe.split_column`), so that every cell of the transfer matrix is a held-out number: a head is
fitted on the rows the linear protocol fits its final model on (train + val, or every labelled row without a
split) and another site's head is scored on the test rows, or on every labelled row without a split (that head
never saw them). The diagonal of the matrix is the linear protocol's own test metric, from the same test rows or
from cross-validation.
"""

from __future__ import annotations

import numpy as np

from medprobe.probes.inputs import ProbeInputs


def fit_rows(inputs: ProbeInputs) -> np.ndarray:
    """Positions (into `inputs`) a site's own head is fitted on."""
    return inputs.fit_positions()


def scored_rows(inputs: ProbeInputs) -> np.ndarray:
    """Positions (into `inputs`) another site's head is scored on."""
    return np.arange(len(inputs.y)) if inputs.split is None else inputs.test_positions()


def rows_label(inputs: ProbeInputs) -> str:
    """How `scored_rows` chose, for a run's parameters."""
    return "all labelled rows" if inputs.split is None else "test split"
