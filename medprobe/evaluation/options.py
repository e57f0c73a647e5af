"""Options of the analyses that sit on top of the protocols: paired model comparisons, subgroups and the
label-efficiency curve. The pipeline spec's `analysis:` section composes them; `medprobe evaluate` and the Python
API take the same models."""

from __future__ import annotations

import itertools
import math
from typing import Annotated, Literal

from pydantic import Field, StrictInt, field_validator, model_validator

from medprobe.options import N_RESAMPLES, Bootstrap, StrictModel

ColumnName = Annotated[str, Field(min_length=1)]
#: Manifest columns that identify a patient, a file or a split: never a subgroup.
RESERVED_COLUMNS = frozenset({"path", "subject_id", "sample_id", "series_uid", "site", "split"})


class PairedOptions(StrictModel):
    """Model-vs-model comparisons on the same test subjects, within a site, task and protocol.

    `baselines`: the model keys every other model is compared with; None: every model against the handcrafted
    baseline, and every pretrained model against the random-init control of its own architecture
    (`medprobe.jobs.paired_step.default_pairs`). `pairs: all` compares every pair of models instead. `bootstrap`:
    paired subject-bootstrap resamples (0: no comparisons)."""

    baselines: list[Annotated[str, Field(min_length=1)]] | None = None
    pairs: Literal["baselines", "all"] = "baselines"
    bootstrap: Bootstrap = N_RESAMPLES


class SubgroupOptions(StrictModel):
    """Per-group metrics for manifest columns: `columns` are read as categories; a column in `bins` is numeric and
    cut at the given edges (left-closed, right-open; values outside the edges belong to no group). A group with
    fewer than `min_subjects` test subjects is listed as too small, not scored."""

    columns: list[ColumnName] = Field(default_factory=list)
    bins: dict[ColumnName, list[float]] = Field(default_factory=dict)
    min_subjects: StrictInt = Field(5, ge=1)
    bootstrap: Bootstrap = N_RESAMPLES

    @field_validator("bins")
    @classmethod
    def _increasing(cls, value: dict[str, list[float]]) -> dict[str, list[float]]:
        for column, edges in value.items():
            if len(edges) < 2 or not all(math.isfinite(e) for e in edges) or any(
                b <= a for a, b in itertools.pairwise(edges)
            ):
                raise ValueError(f"bins of {column!r} must be two or more increasing finite edges, got {edges}")
        return value

    @model_validator(mode="after")
    def _not_twice(self) -> SubgroupOptions:
        twice = sorted(set(self.columns) & set(self.bins))
        if twice:
            raise ValueError(f"{twice} listed both in columns and in bins; a binned column goes only in bins")
        reserved = sorted(set(self.attributes) & RESERVED_COLUMNS)
        if reserved:
            raise ValueError(f"{reserved} cannot be subgroups: identifiers, paths and the split would become run "
                             "keys; the site is a subgroup in `medprobe compare` already")
        return self

    @property
    def attributes(self) -> list[str]:
        """Every column stratified by, categorical first."""
        return [*self.columns, *self.bins]


class LabelEfficiencyOptions(StrictModel):
    """The linear probe refitted on `fractions` of the training subjects (stratified by class), `repeats` draws
    each, seeded by the job's seed."""

    fractions: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=lambda: [0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0], min_length=1)
    repeats: StrictInt = Field(5, ge=1, le=100)


class AnalysisOptions(StrictModel):
    """`paired` runs by default; `subgroups` and `label_efficiency` when the spec has them."""

    paired: PairedOptions = PairedOptions()
    subgroups: SubgroupOptions | None = None
    label_efficiency: LabelEfficiencyOptions | None = None
