"""The robustness protocol's options (`protocols.robustness` in a spec). Light: no MONAI, TorchIO or torch."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt, model_validator

from medprobe.options import N_RESAMPLES, Bootstrap, Seed, StrictModel

Severity = Annotated[StrictInt, Field(ge=1, le=5)]


class RobustnessOptions(StrictModel):
    """The test split embedded again under each of `artefacts` (None: the modality's whole suite,
    `medprobe.artefacts.artefacts_for`) at each of `severities`, scored by the linear probe's clean-trained head.
    `seed` fixes every random draw of the corruptions; `bootstrap` resamples give the intervals; `summary_severity`
    is the severity of the ranking number (mean relative drop of the headline metric over the artefacts): one of
    `severities`, by default 3 when it is among them, else the middle one."""

    artefacts: list[Annotated[str, Field(min_length=1)]] | None = Field(None, min_length=1)
    severities: list[Severity] = Field(default_factory=lambda: [1, 2, 3, 4, 5], min_length=1)
    seed: Seed = 0
    bootstrap: Bootstrap = N_RESAMPLES
    summary_severity: Severity | None = None

    @model_validator(mode="after")
    def _summary_among_severities(self) -> RobustnessOptions:
        if self.summary_severity is not None and self.summary_severity not in self.severities:
            raise ValueError(f"summary_severity {self.summary_severity} is not among severities {self.severities}")
        return self

    @property
    def ranking_severity(self) -> int:
        if self.summary_severity is not None:
            return self.summary_severity
        ordered = sorted(set(self.severities))
        return 3 if 3 in ordered else ordered[len(ordered) // 2]
