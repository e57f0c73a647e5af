"""Preprocessing options: orientation, spacing, intensity by modality, size and how a 2D model sees a volume.

This layer owns them (and so their defaults); the pipeline spec, `medprobe embed --preprocessing` and LDAE
pretraining compose the same models, so every front end can express the same chain.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictInt, field_validator, model_validator

from medprobe.options import StrictModel

Modality = Literal["mri", "ct", "xray", "fundus", "photo", "other"]
Axis = Literal["axial", "coronal", "sagittal"]
#: The letters of each world axis in orientation codes: one of each, in any order (RAS, LPS, SPL, ...).
AXIS_PAIRS = ("LR", "AP", "SI")


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
    """Clip to percentiles, then z-score by the mean and SD of the non-zero voxels (MONAI's
    `NormalizeIntensity(nonzero=True)`: the other voxels stay 0), or (`statistics: positive`) of the voxels above
    0, applied to every voxel but the zeros (MedicalNet's `__itensity_normalize_one_volume__`)."""

    mode: Literal["zscore"] = "zscore"
    statistics: Literal["nonzero", "positive"] = "nonzero"


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
    """Clip Hounsfield units to a window and scale to 0–1 (CT): a preset, a centre and width, or the low and high
    HU of MONAI's `ScaleIntensityRange(a_min=low, a_max=high, b_min=0, b_max=1, clip=True)` as model authors give it."""

    mode: Literal["ct_window"] = "ct_window"
    preset: Literal[tuple(CT_WINDOW_PRESETS)] | None = "brain"  # type: ignore[valid-type]
    center: float | None = None
    width: float | None = Field(None, gt=0)
    low: float | None = None
    high: float | None = None

    @model_validator(mode="after")
    def _preset_or_explicit(self) -> CTWindowIntensity:
        if (self.center is None) != (self.width is None):
            raise ValueError("give both center and width, or neither (then preset is used)")
        if (self.low is None) != (self.high is None):
            raise ValueError("give both low and high (HU), or neither")
        if self.low is not None and self.center is not None:
            raise ValueError("give center and width, or low and high, not both")
        if self.low is not None and self.high is not None and self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        return self

    def bounds(self) -> tuple[float, float]:
        """The HU mapped to 0 and to 1."""
        if self.low is not None and self.high is not None:
            return self.low, self.high
        if self.center is not None and self.width is not None:
            return self.center - self.width / 2, self.center + self.width / 2
        if self.preset is None:
            raise ValueError("ct_window needs a preset, center and width, or low and high")
        center, width = CT_WINDOW_PRESETS[self.preset]
        return center - width / 2, center + width / 2


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
    """Steps in order: 4D volumes, orientation, spacing, intensity, size (whole image/volume), then 3D→2D views if
    needed.

    A 4D series (fMRI, DWI, multi-echo) is skipped with a reason unless `volume_index` or `reduce_4d` says which
    3D volume to embed: no encoder takes time points or diffusion directions for colour channels.
    """

    volume_index: StrictInt | None = Field(
        None,
        description="4D series: embed this volume of the 4th axis (0 = first, -1 = last); an image with fewer "
        "volumes is skipped. 3D images are not affected",
    )
    reduce_4d: Literal["mean"] | None = Field(
        None, description="4D series: embed the voxel-wise mean of all volumes of the 4th axis instead"
    )
    orientation: str | None = Field(
        "RAS", description="axis codes the voxel axes are turned to (RAS, LPS, SPL, ...: one of L/R, A/P, S/I each)"
    )
    spacing: tuple[float, float, float] | None = None
    intensity: Intensity | None = None
    crop_foreground: bool = Field(
        False, description="after intensity, crop to the bounding box of the voxels above 0 (MONAI's CropForeground "
        "with its defaults), as CT models' authors do to drop the air around the body"
    )
    size: tuple[StrictInt, ...] | None = Field(
        None,
        description="target size in voxels of the whole image (2 values) or volume (3 values), applied after "
        "intensity and before the 3D→2D views; an image with the other number of dimensions is skipped",
    )
    fit: Literal["resize", "crop_or_pad"] = Field(
        "resize", description="how to reach `size`: interpolate, or centre-crop / pad with the image minimum"
    )
    pad_value: float | None = Field(
        None, description="fit crop_or_pad: the value padding adds (None: the image minimum)"
    )
    volume_to_2d: VolumeTo2D = VolumeTo2D()
    model_defaults: bool = Field(
        True, description="apply the model card's authors_preprocessing to the steps this section leaves out "
        "(for the modalities the card names); false: only these steps and the modality defaults"
    )
    inputs: Literal["auto", "volumes", "any"] = Field(
        "auto", description="what the images are: 'volumes' skips 2D images and one-slice volumes ('single-slice'), "
        "'any' takes both, 'auto' expects volumes for mri and ct and takes anything otherwise",
    )

    @field_validator("orientation")
    @classmethod
    def _axis_codes(cls, value: str | None) -> str | None:
        if value is None:
            return value
        code = value.upper()
        axes = sorted(next((i for i, pair in enumerate(AXIS_PAIRS) if c in pair), -1) for c in code)
        if axes != [0, 1, 2]:
            raise ValueError(f"orientation {value!r} is not three axis codes with one of L/R, A/P and S/I each "
                             "(e.g. RAS, LPS, SPL)")
        return code

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
    def _one_4d_policy(self) -> Preprocessing:
        if self.volume_index is not None and self.reduce_4d is not None:
            raise ValueError("give volume_index (one volume of a 4D series) or reduce_4d (all of them), not both")
        return self

    @model_validator(mode="after")
    def _fit_needs_size(self) -> Preprocessing:
        if "fit" in self.model_fields_set and self.size is None:
            raise ValueError("fit has no effect without size; give size (2 or 3 voxel counts) or drop fit")
        return self


class PreprocessOptions(StrictModel):
    """What a preprocessing chain is built from (besides the encoder's input): the modality, whose defaults apply
    where `preprocessing` leaves a step out, and the steps. A job spec's `data` section is one of these plus the
    manifest."""

    modality: Modality
    preprocessing: Preprocessing = Preprocessing()

    def intensity(self) -> Intensity:
        """The intensity step: the spec's choice, else the modality default."""
        return self.preprocessing.intensity or DEFAULT_INTENSITY[self.modality]
