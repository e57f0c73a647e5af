"""The preprocessing chain: built from the preprocessing options (a spec's data section) and the encoder's InputSpec.

Its `describe()` is part of the embedding cache key and of the run's record, so two runs that preprocess
differently can never share cached embeddings or be mistaken for each other.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

import numpy as np
import torch

from medprobe.errors import ReadError, SpecError
from medprobe.io.image import MedicalImage
from medprobe.preprocess.corruption import ImageCorruption
from medprobe.preprocess.input_checks import InputCheck
from medprobe.preprocess.input_spec import InputSpec
from medprobe.preprocess.intensity import IntensityStep
from medprobe.preprocess.model_defaults import with_model_defaults
from medprobe.preprocess.options import PreprocessOptions
from medprobe.preprocess.spatial import CropToForeground, ToOrientation, ToSize, ToSpacing
from medprobe.preprocess.tensor_steps import letterbox, match_channels, normalise, pad_to_square, resize
from medprobe.preprocess.views import VolumeSlicer
from medprobe.preprocess.volumes import SelectVolume


class PreprocessChain:
    """MedicalImage → tensor (V, C, *size): V views of one sample (V > 1 for 2D models on 3D volumes).

    Whole-image steps run in this order: 4D volumes (one volume, their mean, or a refusal), the `corruption` of the
    robustness protocol when there is one (in the scanner's own geometry and units, where acquisition artefacts
    arise), orientation, spacing, intensity, foreground crop, size; then a 2D model's views are cut and each is
    brought to the model's own input size. The model's published defaults (`model_input.defaults`, the authors'
    preprocessing) fill in the steps the options leave out; `describe()` records which.
    """

    def __init__(self, data: PreprocessOptions, model_input: InputSpec,
                 corruption: ImageCorruption | None = None) -> None:
        data, self.defaults_record = with_model_defaults(data, model_input.defaults)
        prep = data.preprocessing
        self.volume_step = SelectVolume(prep.volume_index, prep.reduce_4d)
        self.corruption = corruption
        self.image_steps: list[ToOrientation | ToSpacing | IntensityStep | CropToForeground | ToSize] = []
        if prep.orientation:
            self.image_steps.append(ToOrientation(prep.orientation))
        if prep.spacing:
            self.image_steps.append(ToSpacing(prep.spacing))
        self.image_steps.append(IntensityStep(data.intensity()))
        if prep.crop_foreground:
            self.image_steps.append(CropToForeground())
        self.size_step: ToSize | None = None
        if prep.size:
            self.size_step = ToSize(prep.size, prep.fit, prep.pad_value)
            if model_input.spatial_dims == 3 and len(prep.size) != 3:
                raise SpecError(f"data.preprocessing.size {list(prep.size)} is 2D but the encoder takes 3D "
                                "volumes; give 3 values")
            self.image_steps.append(self.size_step)
        self.model_input = model_input
        self.input_check = InputCheck(data, model_input)
        self.slicer = VolumeSlicer(prep.volume_to_2d) if model_input.spatial_dims == 2 else None
        self.aggregate: Literal["mean", "max"] = prep.volume_to_2d.aggregate

    def __call__(self, image: MedicalImage, source: str = "") -> torch.Tensor:
        image = self.volume_step(image, source)
        self.input_check.modality_of(image, source)
        if self.corruption is not None:
            # Keyed by the image's content, not its path: the same scan gets the same draw wherever it is stored,
            # as the embedding cache (keyed by content) assumes.
            image = self.corruption(image, key=hashlib.sha256(image.array.tobytes()).hexdigest())
        want = self.model_input.spatial_dims
        if want == 3 and image.spatial_dims != 3:
            raise ReadError(source, "this encoder needs a 3D volume but the file holds a 2D image", "wrong-dimensions")
        if self.size_step:
            self.size_step.check(image, source)  # before the costly steps: the dimensions do not change
        self.input_check.slices(image, source)
        for step in self.image_steps:
            if isinstance(step, IntensityStep):  # after orientation and spacing: the voxels the model will see
                self.input_check.size(image, source)
            image = step(image, source)
        views = self.slicer(image.array) if self.slicer else [image.array]
        return self._to_model_tensor(views)

    def max_views(self) -> int:
        """The most views one sample can yield: 1, or the slices/planes a 2D model cuts from a volume."""
        if self.slicer is None:
            return 1
        return 3 if self.slicer.option.strategy == "orthogonal" else self.slicer.option.n

    def _to_model_tensor(self, views: list[np.ndarray]) -> torch.Tensor:
        """Each view is padded to a square and resized on its own: orthogonal planes differ in shape.

        medprobe's arrays index space as (x, y[, z]): for a picture, x runs along a row (the column index) and y
        down the columns (the row index), like a volume's (i, j). Image models take (C, rows, columns), the picture
        as it is displayed, so a 2D model's views are transposed to that first."""
        spec = self.model_input
        tensors = [torch.from_numpy(np.ascontiguousarray(v)) for v in views]
        if spec.spatial_dims == 2:
            tensors = [t.transpose(-1, -2).contiguous() for t in tensors]
        shapes = {tuple(t.shape[1:]) for t in tensors}
        if spec.fit == "letterbox" and spec.size is not None:
            tensors = [letterbox(t, spec.size) for t in tensors]
        elif shapes != {spec.size} and (spec.size is not None or len(shapes) > 1):  # not when a size step
            tensors = [pad_to_square(t) for t in tensors]                         # already gave the model's size
        if spec.size is not None:
            tensors = [resize(t[None], spec.size, spec.interpolation)[0] for t in tensors]
        elif len({tuple(t.shape) for t in tensors}) > 1:
            side = max(t.shape[1] for t in tensors)
            tensors = [resize(t[None], (side,) * (t.ndim - 1), spec.interpolation)[0] for t in tensors]
        batch = torch.stack(tensors)
        if spec.channels is not None:
            batch = match_channels(batch, spec.channels)
        if spec.mean is not None and spec.std is not None:
            batch = normalise(batch, spec.mean, spec.std)
        return batch.contiguous()

    def describe(self) -> list[dict[str, Any]]:
        corruption = [{"step": "corruption", **self.corruption.describe()}] if self.corruption is not None else []
        defaults = [self.defaults_record] if self.defaults_record is not None else []
        steps = [*defaults, self.volume_step.describe(), *corruption, *(step.describe() for step in self.image_steps)]
        if self.slicer:
            steps.append(self.slicer.describe())
        layout = {"layout": "channels, rows, columns"} if self.model_input.spatial_dims == 2 else {}
        pad_to_square = self.model_input.size is not None and self.model_input.fit == "pad_square"
        steps.append({"step": "model_input", "pad_to_square": pad_to_square, **layout, **self.model_input.describe()})
        return steps

    def digest_text(self) -> str:
        return json.dumps(self.describe(), sort_keys=True)
