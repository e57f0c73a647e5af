"""The pipeline spec: one YAML file describing a site job (data, models, tasks, protocols, tracking).

Every model forbids unknown keys, so a typo is an error that names the key instead of a silently ignored option.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

Modality = Literal["mri", "ct", "xray", "fundus", "photo", "other"]
Precision = Literal["auto", "fp32", "bf16"]
TaskType = Literal["classification", "regression"]
Axis = Literal["axial", "coronal", "sagittal"]
Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
#: Zoo names, or `timm:<architecture>` for any timm model.
ModelName = Annotated[str, Field(min_length=1, pattern=r"^([A-Za-z0-9_]+:)?[A-Za-z0-9][A-Za-z0-9_.\-]*$")]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PercentileBounds(StrictModel):
    """Lower and upper percentiles (of all voxels, background included) that clip the intensities."""

    lower: float = Field(0.5, ge=0, lt=100)
    upper: float = Field(99.5, gt=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> PercentileBounds:
        if self.lower >= self.upper:
            raise ValueError(f"lower ({self.lower}) must be below upper ({self.upper})")
        return self


class PercentileIntensity(PercentileBounds):
    """Clip to percentiles and scale to 0–1 (MRI default)."""

    mode: Literal["percentile"] = "percentile"


class ZScoreIntensity(PercentileBounds):
    """Clip to percentiles, then z-score over non-zero voxels (MRI for models trained that way)."""

    mode: Literal["zscore"] = "zscore"


CT_WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    # name: (centre HU, width HU)
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "stroke": (40.0, 40.0),
    "lung": (-600.0, 1500.0),
    "mediastinum": (50.0, 350.0),
    "abdomen": (40.0, 400.0),
    "liver": (60.0, 160.0),
    "bone": (400.0, 1800.0),
}


class CTWindowIntensity(StrictModel):
    """Clip Hounsfield units to a window and scale to 0–1 (CT)."""

    mode: Literal["ct_window"] = "ct_window"
    preset: Literal[tuple(CT_WINDOW_PRESETS)] | None = "brain"  # type: ignore[valid-type]
    center: float | None = None
    width: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _preset_or_explicit(self) -> CTWindowIntensity:
        if (self.center is None) != (self.width is None):
            raise ValueError("give both center and width, or neither (then preset is used)")
        return self

    def window(self) -> tuple[float, float]:
        if self.center is not None and self.width is not None:
            return self.center, self.width
        if self.preset is None:
            raise ValueError("ct_window needs a preset or center and width")
        return CT_WINDOW_PRESETS[self.preset]


class RangeIntensity(StrictModel):
    """Scale by the stored range to 0–1: 8/16-bit photographs, fundus, X-ray (dtype max, or min–max if float)."""

    mode: Literal["scale01"] = "scale01"


class NoIntensity(StrictModel):
    """Leave values as read (the model does its own normalisation)."""

    mode: Literal["none"] = "none"


Intensity = Annotated[
    PercentileIntensity | ZScoreIntensity | CTWindowIntensity | RangeIntensity | NoIntensity,
    Field(discriminator="mode"),
]

DEFAULT_INTENSITY: dict[str, Intensity] = {
    "mri": PercentileIntensity(),
    "ct": CTWindowIntensity(),
    "xray": RangeIntensity(),
    "fundus": RangeIntensity(),
    "photo": RangeIntensity(),
    "other": RangeIntensity(),
}


class VolumeTo2D(StrictModel):
    """How a 2D model sees a 3D volume: which slices, and how slice embeddings become one vector."""

    strategy: Literal["slices", "orthogonal"] = "slices"
    axis: Axis = "axial"
    n: int = Field(3, ge=1, le=64, description="slices along `axis` (strategy 'slices')")
    extent: float = Field(0.5, gt=0, le=1, description="central fraction of the axis the slices span")
    aggregate: Literal["mean", "max"] = "mean"


class Preprocessing(StrictModel):
    """Steps in order: orientation, spacing, intensity, size (whole image/volume), then 3D→2D views if needed."""

    orientation: Literal["RAS"] | None = "RAS"
    spacing: tuple[float, float, float] | None = None
    intensity: Intensity | None = None
    size: tuple[StrictInt, ...] | None = Field(
        None,
        description="target size in voxels of the whole image (2 values) or volume (3 values), applied after "
        "intensity and before the 3D→2D views; an image with the other number of dimensions is skipped",
    )
    fit: Literal["resize", "crop_or_pad"] = Field(
        "resize", description="how to reach `size`: interpolate, or centre-crop / pad with the image minimum"
    )
    volume_to_2d: VolumeTo2D = VolumeTo2D()

    @field_validator("spacing")
    @classmethod
    def _positive_spacing(cls, value: tuple[float, float, float] | None) -> tuple[float, float, float] | None:
        if value is not None and min(value) <= 0:
            raise ValueError("spacing values must be positive millimetres")
        return value

    @field_validator("size")
    @classmethod
    def _size_2d_or_3d(cls, value: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if value is None:
            return value
        if len(value) not in (2, 3):
            raise ValueError(f"size needs 2 values (2D images) or 3 (volumes); got {len(value)}: {list(value)}")
        if not all(1 <= v <= 4096 for v in value):
            raise ValueError(f"size values must be voxel counts from 1 to 4096; got {list(value)}")
        return value

    @model_validator(mode="after")
    def _fit_needs_size(self) -> Preprocessing:
        if "fit" in self.model_fields_set and self.size is None:
            raise ValueError("fit has no effect without size; give size (2 or 3 voxel counts) or drop fit")
        return self


class DataSpec(StrictModel):
    manifest: Path
    modality: Modality
    preprocessing: Preprocessing = Preprocessing()

    def intensity(self) -> Intensity:
        """The intensity step: the spec's choice, else the modality default."""
        return self.preprocessing.intensity or DEFAULT_INTENSITY[self.modality]


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

    @property
    def key(self) -> str:
        """The identifier used in runs, tags and file names."""
        return self.alias or self.name.replace(":", "-")


class TaskSpec(StrictModel):
    name: Name
    target: str = Field(min_length=1)
    type: TaskType = "classification"


class LinearOptions(StrictModel):
    grid: list[float] | None = None
    class_weight: Literal["balanced"] | None = None
    inner_folds: int = Field(3, ge=2, le=20)
    folds: int = Field(5, ge=2, le=50)
    bootstrap: int = Field(1000, ge=0, le=100000)
    ordinal: bool = False
    seeds: int = Field(1, ge=1, le=100)


class KnnOptions(StrictModel):
    k: list[int] = Field(default_factory=lambda: [10, 20, 50, 100, 200], min_length=1)
    primary_k: int = Field(20, ge=1)
    temperature: float = Field(0.07, gt=0)
    folds: int = Field(5, ge=2, le=50)
    bootstrap: int = Field(1000, ge=0, le=100000)
    ordinal: bool = False
    seeds: int = Field(1, ge=1, le=100)

    @field_validator("k")
    @classmethod
    def _positive_k(cls, value: list[int]) -> list[int]:
        if min(value) < 1:
            raise ValueError("every k must be at least 1")
        return value


class FewshotOptions(StrictModel):
    shots: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16], min_length=1)
    episodes: int = Field(100, ge=1, le=10000)
    linear_alpha: float = Field(1.0, gt=0)
    folds: int = Field(5, ge=2, le=50)
    bootstrap: int = Field(1000, ge=0, le=100000)
    ordinal: bool = False
    seeds: int = Field(1, ge=1, le=100)


class AttentiveOptions(StrictModel):
    """The attentive probe on patch tokens (encoders that expose them; see medprobe/probes/attentive.py)."""

    queries: int = Field(32, ge=1, le=1024)
    epochs: int = Field(60, ge=1, le=10000)
    optimizer: Literal["adamw", "lars"] = "adamw"
    lr: float | None = Field(None, gt=0)
    weight_decay: float | None = Field(None, ge=0)
    batch_size: int = Field(256, ge=2, le=65536)
    folds: int = Field(5, ge=2, le=50)
    bootstrap: int = Field(1000, ge=0, le=100000)
    ordinal: bool = False
    seeds: int = Field(1, ge=1, le=100)


class ProtocolsSpec(StrictModel):
    """Protocols to run: a key present (even empty, `knn: {}`) enables it with default options."""

    linear: LinearOptions | None = None
    knn: KnnOptions | None = None
    fewshot: FewshotOptions | None = None
    attentive: AttentiveOptions | None = None

    def enabled(self) -> dict[str, StrictModel]:
        return {name: opts for name, opts in self if opts is not None}

    @model_validator(mode="after")
    def _at_least_one(self) -> ProtocolsSpec:
        if not self.enabled():
            raise ValueError("enable at least one protocol (linear, knn, fewshot or attentive)")
        return self


class TrackingSpec(StrictModel):
    uri: str = "sqlite:///mlflow.db"
    experiment: str | None = None


class PipelineSpec(StrictModel):
    """A site job: `medprobe run SPEC`."""

    name: Name
    site: Name
    data: DataSpec
    models: list[ModelSpec] = Field(min_length=1)
    tasks: list[TaskSpec] = Field(min_length=1)
    protocols: ProtocolsSpec
    tracking: TrackingSpec = TrackingSpec()
    workdir: Path = Path("medprobe-work")
    seed: int = 0
    num_workers: int = Field(1, ge=0, le=64)

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

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or f"medprobe/{self.name}"


def _require_unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{what} name {name!r} appears twice")
        seen.add(name)
