"""What an encoder expects as input. Encoders publish one; the chain builds towards it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from medprobe.preprocess.model_defaults import ModelDefaults

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """spatial_dims: 2 or 3, or None for "as read" (handcrafted features take any size).

    size: output spatial size (None keeps the image's own); channels: 1 or 3 (None keeps them);
    mean/std: per-channel normalisation applied after intensity scaling to 0–1; defaults: the authors' whole-volume
    steps (a model card's `authors_preprocessing`), which the chain applies where a spec is silent.
    """

    spatial_dims: int | None = 2
    size: tuple[int, ...] | None = (224, 224)
    channels: int | None = 3
    mean: tuple[float, ...] | None = IMAGENET_MEAN
    std: tuple[float, ...] | None = IMAGENET_STD
    interpolation: str = "bicubic"
    defaults: ModelDefaults | None = None
    #: How a 2D view reaches `size`: "pad_square" (pad symmetrically to a square with the minimum, then resize) or
    #: "letterbox" (resize the longest side to the size, keeping the aspect, then pad right and bottom with zeros:
    #: FLAIR's `preprocess_image`).
    fit: Literal["pad_square", "letterbox"] = "pad_square"

    def describe(self) -> dict[str, Any]:
        described = asdict(self)
        described.pop("defaults")
        if self.fit == "pad_square":  # the fingerprints of models that always padded to a square stay as they were
            described.pop("fit")
        if self.defaults is not None:  # only then: the fingerprints of models without defaults stay as they were
            described["defaults"] = self.defaults.describe()
        return described
