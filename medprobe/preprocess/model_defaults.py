"""The authors' preprocessing travels with the model: a model card's `authors_preprocessing` fills in the steps a
spec leaves out, for the modalities the authors trained on.

Why: a 3D foundation model sees what its authors' transform chain produced (CT-FM: SPL, 3×1×1 mm, HU [-1024, 2048];
Merlin: RAS, 1.5×1.5×3 mm, HU [-1000, 1000], 224×224×160). Fed RAS volumes at native spacing in a brain window it
still gives numbers, silently worse ones, which is how comparisons of CT models go wrong. So the job applies the
authors' steps by default; a spec that sets a step itself keeps its own (an override), `model_defaults: false` turns
the defaults off, and the chain records which steps came from where, so the embedding cache and the run's record
never mix the two.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from medprobe.options import StrictModel
from medprobe.preprocess.options import Modality, Preprocessing, PreprocessOptions

#: The steps a card may set: what the authors' chains specify for the whole volume.
DEFAULTABLE = ("orientation", "spacing", "intensity", "crop_foreground", "size", "fit", "pad_value")


class ModelDefaults(StrictModel):
    """A card's `authors_preprocessing`: the modalities it is meant for, and `data.preprocessing` fields."""

    modalities: tuple[Modality, ...] = Field(min_length=1)
    steps: Preprocessing
    #: The fields the card sets (the others keep their defaults and are not applied).
    fields: tuple[str, ...]

    @classmethod
    def from_card(cls, block: dict[str, Any]) -> ModelDefaults:
        """Parse a card block: `modalities` plus any of DEFAULTABLE, in data.preprocessing's own vocabulary."""
        values = {k: v for k, v in block.items() if k != "modalities"}
        return cls(modalities=block.get("modalities", ()), steps=Preprocessing.model_validate(values),
                   fields=tuple(k for k in DEFAULTABLE if k in values))

    @field_validator("fields")
    @classmethod
    def _defaultable(cls, fields: tuple[str, ...]) -> tuple[str, ...]:
        if not fields:
            raise ValueError(f"authors_preprocessing sets none of {', '.join(DEFAULTABLE)}")
        return fields

    def values(self) -> dict[str, Any]:
        return self.steps.model_dump(mode="json", include=set(self.fields))

    def describe(self) -> dict[str, Any]:
        return {"modalities": list(self.modalities), **self.values()}


def with_model_defaults(data: PreprocessOptions, defaults: ModelDefaults | None
                        ) -> tuple[PreprocessOptions, dict[str, Any] | None]:
    """The options the chain runs (the spec's, with the authors' steps where the spec is silent) and the record
    of what was decided, for the chain's description; None when the model publishes no defaults."""
    if defaults is None:
        return data, None
    prep = data.preprocessing
    if not prep.model_defaults:
        return data, {"step": "model_defaults", "applied": False, "reason": "turned off by the spec"}
    if data.modality not in defaults.modalities:
        return data, {"step": "model_defaults", "applied": False,
                      "reason": f"made for {', '.join(defaults.modalities)}, the data is {data.modality}"}
    chosen = prep.model_fields_set
    theirs = defaults.values()
    taken = {k: v for k, v in theirs.items() if k not in chosen}
    overridden = sorted(k for k in theirs if k in chosen and _json(prep, k) != theirs[k])
    merged = Preprocessing.model_validate({**prep.model_dump(mode="json", include=chosen), **taken})
    record = {"step": "model_defaults", "applied": True, "from_model": sorted(taken), "spec_overrides": overridden}
    return PreprocessOptions(modality=data.modality, preprocessing=merged), record


def _json(prep: Preprocessing, field: str) -> Any:
    return prep.model_dump(mode="json", include={field})[field]
