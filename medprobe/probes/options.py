"""Each protocol's options model: the one place its options and their defaults are written.

The pipeline spec's `protocols:` section, `medprobe evaluate`'s flags, the probe heads and the federated probes all
read these models; nothing else writes a protocol default. Unknown keys and bad values are refused with a message
that names the option. Each built-in protocol is registered (`medprobe.probes.registry`) beside its model, its runner
named by import path. This module imports neither torch nor the protocols, so a spec is checked without them.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, ValidationError, model_validator

from medprobe.artefacts.options import RobustnessOptions
from medprobe.errors import ProbeError
from medprobe.options import MAX_SEED_REPEATS, N_RESAMPLES, Bootstrap, StrictModel, format_validation_error
from medprobe.probes import registry
from medprobe.probes.registry import register_protocol


def _as_list(value: Any) -> Any:
    """A single integer counts as a list of one (`k: 20` is `k: [20]`)."""
    return [value] if isinstance(value, numbers.Integral) and not isinstance(value, bool) else value


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


IntList = Annotated[list[Annotated[StrictInt, Field(ge=1)]], BeforeValidator(_as_list), Field(min_length=1)]


class ProtocolOptions(StrictModel):
    """Options every protocol takes: cross-validation folds (used when no split is given), subject-bootstrap
    resamples for the 95 % intervals (0: none), `ordinal` labels (adds quadratic-weighted kappa), `seeds` repeats."""

    folds: StrictInt = Field(5, ge=2, le=50)
    bootstrap: Bootstrap = N_RESAMPLES
    ordinal: StrictBool = False
    seeds: StrictInt = Field(1, ge=1, le=MAX_SEED_REPEATS)


class LinearOptions(ProtocolOptions):
    """Logistic regression (ridge for regression) on standardised features; C (alpha) chosen on held-out rows over
    `grid` (None: the protocol's log-spaced default grid). `selection`: the held-out criterion that picks C —
    log-loss by default, so the chosen head's probabilities mean something (accuracy alone ties across many C on
    small data and the tie goes to the strongest regularisation, where every probability is ~0.5); regression
    always picks alpha by mean squared error."""

    grid: list[Annotated[float, Field(gt=0)]] | None = Field(None, min_length=1)
    selection: Literal["log_loss", "accuracy", "balanced_accuracy", "auroc"] = "log_loss"
    class_weight: Literal["balanced"] | None = None
    inner_folds: StrictInt = Field(3, ge=2, le=20)


register_protocol("linear", options=LinearOptions, scores_predictions=True, runner="medprobe.probes.linear:run_linear")


#: The k-NN headline k when `primary_k` is not given and the `k` list holds it.
DEFAULT_PRIMARY_K = 20


def headline_k(ks: list[int]) -> int:
    """The headline k of a `k` list given without `primary_k`: the largest k up to `DEFAULT_PRIMARY_K`, else the
    smallest (`k: [5]` → 5, `k: [10, 20, 50]` → 20, `k: [50, 100]` → 50), so the headline is always a k asked for."""
    within = [k for k in ks if k <= DEFAULT_PRIMARY_K]
    return max(within) if within else min(ks)


class KnnOptions(ProtocolOptions):
    """DINO-style weighted k-NN on cosine similarity: every `k` is reported; the headline k is chosen on the
    validation split by `selection` when the data has one (regression: by mean squared error), else `primary_k`.
    `selection: primary_k` always uses `primary_k`. Without `primary_k` the headline k is one of the list: the
    largest k up to 20, else the smallest (`k: [5]` reports k = 5); a `primary_k` outside the list is run as well
    and noted in the results."""

    k: IntList = Field(default_factory=lambda: [10, 20, 50, 100, 200])
    primary_k: StrictInt = Field(DEFAULT_PRIMARY_K, ge=1)
    selection: Literal["log_loss", "accuracy", "balanced_accuracy", "auroc", "primary_k"] = "log_loss"
    temperature: float = Field(0.07, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _headline_in_the_list(cls, data: Any) -> Any:
        """A `k` list without `primary_k` takes its headline k from the list (`headline_k`), not the default 20."""
        if not isinstance(data, Mapping) or data.get("primary_k") is not None or data.get("k") is None:
            return data
        ks = _as_list(data["k"])
        if not isinstance(ks, list) or not ks or not all(_positive_int(k) for k in ks):
            return data  # the field's own validation names the problem
        return {**data, "primary_k": headline_k(ks)}


register_protocol("knn", options=KnnOptions, scores_predictions=True, runner="medprobe.probes.knn:run_knn")


class FewshotOptions(ProtocolOptions):
    """SimpleShot and a ridge classifier over `episodes` sampled episodes per shot level (shots in subjects)."""

    shots: IntList = Field(default_factory=lambda: [1, 2, 4, 8, 16])
    episodes: StrictInt = Field(100, ge=1, le=10000)
    linear_alpha: float = Field(1.0, gt=0)


#: Few-shot's metrics are means over episodes and its predictions the episodes' vote shares: no prediction analyses.
register_protocol("fewshot", options=FewshotOptions, task_types=("classification",), scores_predictions=False,
                  runner="medprobe.probes.fewshot:run_fewshot")


class AttentiveOptions(ProtocolOptions):
    """The attentive probe on patch tokens (learnable queries cross-attending to the tokens). `lr` and
    `weight_decay` None: the optimiser's own defaults (see `medprobe.probes.attentive.OPTIMIZER_DEFAULTS`)."""

    queries: StrictInt = Field(32, ge=1, le=1024)
    epochs: StrictInt = Field(60, ge=1, le=10000)
    optimizer: Literal["adamw", "lars"] = "adamw"
    lr: float | None = Field(None, gt=0)
    weight_decay: float | None = Field(None, ge=0)
    batch_size: StrictInt = Field(256, ge=2, le=65536)


register_protocol("attentive", options=AttentiveOptions, scores_predictions=True, tokens=True,
                  runner="medprobe.probes.attentive:run_attentive")


class ZeroShotOptions(ProtocolOptions):
    """Zero-shot classification by a vision-language model's own text tower: each class's prompts (the task's
    `prompts`) are put into every template (`{}` is the prompt; None: the model's published templates), embedded,
    averaged per class and compared with the image embedding by cosine, times the model's published logit scale
    (plus its bias, SigLIP), softmax over the classes. Nothing is trained: every test row is scored (every row
    without a split)."""

    templates: list[Annotated[str, Field(min_length=1)]] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _placeholder(self) -> ZeroShotOptions:
        missing = [t for t in self.templates or () if t.count("{}") != 1]
        if missing:
            raise ValueError(f"every template needs exactly one '{{}}' for the class prompt: {missing[:3]}")
        return self


register_protocol("zeroshot", options=ZeroShotOptions, task_types=("classification",), scores_predictions=True,
                  text=True, runner="medprobe.probes.zeroshot:run_zeroshot")


class ProtocolsOptions(StrictModel):
    """Protocols to run: a key present (even empty, `knn: {}`) enables it with default options; the keys are the
    registered protocols (`medprobe.probes.registry`). `robustness` is not a probe on the embeddings but the linear
    probe's head on re-embedded corrupted test images (`medprobe.artefacts`), so it needs `linear`."""

    # Protocols registered after the built-ins (fields below) are validated by the registry into extra keys.
    model_config = ConfigDict(extra="allow")

    linear: LinearOptions | None = None
    knn: KnnOptions | None = None
    fewshot: FewshotOptions | None = None
    attentive: AttentiveOptions | None = None
    zeroshot: ZeroShotOptions | None = None
    robustness: RobustnessOptions | None = None

    @model_validator(mode="before")
    @classmethod
    def _registered_keys(cls, data: Any) -> Any:
        """Every key is a registered protocol (or `robustness`); one not a field is validated by its options model."""
        if not isinstance(data, Mapping):
            return data
        others = [key for key in data if key not in cls.model_fields]
        if not others:
            return data
        try:
            registry.check_protocols(others)
            return {**data, **{key: options_for(key, data[key]) for key in others}}
        except ProbeError as error:  # answered as the spec's error, with its key path
            raise ValueError(str(error)) from None

    def enabled(self) -> dict[str, ProtocolOptions]:
        """The probe protocols, in the order they run (robustness runs after them, on the linear head)."""
        return {name: opts for name in registry.protocol_names()
                if isinstance(opts := getattr(self, name, None), ProtocolOptions)}

    @model_validator(mode="after")
    def _at_least_one(self) -> ProtocolsOptions:
        if not self.enabled():
            raise ValueError(f"enable at least one protocol ({', '.join(registry.protocol_names())})")
        if self.robustness is not None and self.linear is None:
            raise ValueError("protocols.robustness scores the linear probe's clean-trained head: enable "
                             "protocols.linear too")
        return self


_FIELDS = [name for name in ProtocolsOptions.model_fields if name not in registry.RESERVED_NAMES]
if list(registry.protocol_names()) != _FIELDS:  # the typed fields are the built-ins, in their registered order
    raise RuntimeError(f"ProtocolsOptions fields {_FIELDS} differ from the registered protocols")


def options_for(protocol: str, options: Mapping[str, Any] | ProtocolOptions | None = None) -> ProtocolOptions:
    """The validated options model of `protocol`; a key given as None keeps its default."""
    model = registry.get_protocol(protocol).options
    if isinstance(options, model):
        return options
    if isinstance(options, ProtocolOptions):
        options = options.model_dump()
    given = {key: value for key, value in dict(options or {}).items() if value is not None}
    try:
        return model.model_validate(given)
    except ValidationError as exc:
        allowed = ", ".join(sorted(model.model_fields))
        raise ProbeError(f"protocol {protocol!r}: {format_validation_error(exc)} (options: {allowed})") from None
