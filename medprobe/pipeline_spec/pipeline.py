"""The pipeline spec: one YAML file describing a site job (data, models, tasks, protocols, tracking).

The spec composes the options models the layers own (preprocessing, each protocol, tracking) and adds what only a
job has: the manifest, the models to run, the tasks, the workdir. Every model forbids unknown keys, so a typo is an
error that names the key instead of a silently ignored option.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from medprobe.errors import MedprobeError
from medprobe.evaluation.options import AnalysisOptions
from medprobe.options import Seed, StrictModel
from medprobe.pipeline_spec.context import JobContext
from medprobe.pipeline_spec.workdir import Workdir
from medprobe.preprocess.options import Preprocessing, PreprocessOptions
from medprobe.probes.options import ProtocolsOptions
from medprobe.tracking.options import TrackingOptions

Precision = Literal["auto", "fp32", "bf16"]
TaskType = Literal["classification", "regression"]
Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
#: Zoo names, or `timm:<architecture>` for any timm model.
ModelName = Annotated[str, Field(min_length=1, pattern=r"^([A-Za-z0-9_]+:)?[A-Za-z0-9][A-Za-z0-9_.\-]*$")]


class DataSpec(PreprocessOptions):
    """The job's images: the manifest, and the preprocessing options `medprobe.preprocess` owns."""

    manifest: Path


class ModelSpec(StrictModel):
    """One encoder. `alias` names it in runs and tables; it lets a pipeline hold the same architecture twice,
    e.g. the pretrained model and its random-init control (`weights` left out)."""

    name: ModelName
    alias: Name | None = None
    weights: Path | None = None
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)
    precision: Precision = "auto"
    batch_size: int = Field(32, ge=1, le=4096)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    preprocessing: Preprocessing | None = Field(
        None, description="steps for this model only, over data.preprocessing and the model card's authors' "
        "preprocessing (e.g. {orientation: RAS} for one CT model); the steps given are recorded as overrides")

    @property
    def key(self) -> str:
        """The identifier used in runs, tags and file names."""
        return self.alias or self.name.replace(":", "-")


class TaskSpec(StrictModel):
    name: Name
    target: str = Field(min_length=1)
    type: TaskType = "classification"
    prompts: dict[str, str | list[Annotated[str, Field(min_length=1)]]] | None = Field(
        None, description="zero-shot protocol: each class value of `target` (as text) → its prompt or prompts, "
        "e.g. {0: no diabetic retinopathy, 1: [diabetic retinopathy, retinal haemorrhages]}")

    @field_validator("prompts", mode="before")
    @classmethod
    def _class_values_as_text(cls, value: Any) -> Any:
        """YAML reads `0:` and `1:` as numbers; the class values are matched as text."""
        return {str(k): v for k, v in value.items()} if isinstance(value, dict) else value

    @model_validator(mode="after")
    def _prompts_name_classes(self) -> TaskSpec:
        if self.prompts is not None and self.type != "classification":
            raise ValueError(f"task '{self.name}': prompts name classes, and a {self.type} task has none")
        if self.prompts is not None and len(self.prompts) < 2:
            raise ValueError(f"task '{self.name}': prompts need at least two classes, got {list(self.prompts)}")
        return self


class PipelineSpec(StrictModel):
    """A site job: `medprobe run SPEC`."""

    name: Name
    site: Name
    data: DataSpec
    models: list[ModelSpec] = Field(min_length=1)
    tasks: list[TaskSpec] = Field(min_length=1)
    protocols: ProtocolsOptions
    analysis: AnalysisOptions = AnalysisOptions()
    tracking: TrackingOptions = TrackingOptions()
    workdir: Path = Path("medprobe-work")
    seed: Seed = 0
    num_workers: int = Field(1, ge=0, le=64)
    probe_device: Literal["cpu", "cuda", "auto"] = Field(
        "cpu", description="where the probes' torch parts run (k-NN search, attentive head, the linear probe's "
                           "solver): cpu gives the same numbers on every machine; cuda or auto (a GPU when one is "
                           "visible) is faster on large tables")

    @field_validator("models")
    @classmethod
    def _unique_models(cls, value: list[ModelSpec]) -> list[ModelSpec]:
        _require_unique([m.key for m in value], "model (name or alias)")
        return value

    @field_validator("tasks")
    @classmethod
    def _unique_tasks(cls, value: list[TaskSpec]) -> list[TaskSpec]:
        _require_unique([t.name for t in value], "task")
        return value

    @model_validator(mode="after")
    def _known_baselines(self) -> PipelineSpec:
        keys = [m.key for m in self.models]
        unknown = [b for b in self.analysis.paired.baselines or [] if b not in keys]
        if unknown:
            raise ValueError(f"analysis.paired.baselines names {unknown}, which are not models of this spec "
                             f"(models: {', '.join(keys)})")
        return self

    @model_validator(mode="after")
    def _known_artefacts(self) -> PipelineSpec:
        robustness = self.protocols.robustness
        if robustness is not None and robustness.artefacts is not None:
            from medprobe.artefacts.registry import parse_artefacts

            try:
                parse_artefacts(robustness.artefacts, self.data.modality)
            except MedprobeError as exc:
                raise ValueError(f"protocols.robustness.artefacts: {exc}") from None
        return self

    @property
    def targets(self) -> list[str]:
        """The task targets: the manifest columns a job cannot run without."""
        return list(dict.fromkeys(t.target for t in self.tasks))

    def label_columns(self, manifest_columns: Iterable[str]) -> list[str]:
        """The columns an embedding table carries besides identifiers: the targets, then the subgroup attributes
        this manifest has (a site without one is told so by the subgroup notes, and its job still runs)."""
        present = set(manifest_columns)
        subgroups = self.analysis.subgroups.attributes if self.analysis.subgroups else []
        return list(dict.fromkeys([*self.targets, *(a for a in subgroups if a in present)]))

    def data_for(self, model: ModelSpec) -> DataSpec:
        """The data options one model's chain is built from: `data.preprocessing`, with the model's own steps over
        it. Only the steps either sets count as set, so the card's defaults still fill the rest."""
        if model.preprocessing is None:
            return self.data
        shared, own = self.data.preprocessing, model.preprocessing
        merged = Preprocessing.model_validate({**shared.model_dump(mode="json", include=shared.model_fields_set),
                                               **own.model_dump(mode="json", include=own.model_fields_set)})
        return self.data.model_copy(update={"preprocessing": merged})

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or f"medprobe/{self.name}"

    @property
    def paths(self) -> Workdir:
        """Every path of the job under `workdir`."""
        return Workdir(self.workdir)

    @property
    def context(self) -> JobContext:
        """What every step of the job needs besides its own options."""
        return JobContext(self.site, self.name, self.experiment_name, self.seed, self.paths)


def _require_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} name {name!r} appears twice")
        seen.add(name)

