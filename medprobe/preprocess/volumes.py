"""4D series (fMRI time points, DWI directions, echoes): embed one volume, the mean of all, or skip with a reason.

Why: readers hold a 4D series as channels (C = volumes, marked by the metadata's `volumes`) so that it loads and
`inspect` can describe it. An encoder takes 1 or 3 channels of one instant; fed 20 time points it either failed
late ("cannot turn 20 channels into 3") or, with exactly 3 volumes, silently took them for RGB. So the chain's
first step decides, from `data.preprocessing.volume_index` / `reduce_4d`, and refuses by default.

`volume_problem` is the one policy check: the step raises it, and `medprobe validate --check-read` reports it, so
validation predicts exactly what a job skips. Nothing here imports torch.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from medprobe.errors import ReadError
from medprobe.io.image import VOLUMES_KEY, MedicalImage

#: What a spec sets to keep 4D series; named in every refusal.
OPTION_NAMES = "data.preprocessing.volume_index (one volume) or data.preprocessing.reduce_4d: mean"


def volumes_of(image: MedicalImage) -> int | None:
    """How many volumes a 4D series holds as channels; None for any other image."""
    value = image.metadata.get(VOLUMES_KEY)
    return int(value) if value is not None else None


def volume_problem(volumes: int | None, volume_index: int | None, reduce_4d: str | None) -> str | None:
    """Why the chain skips an image with `volumes` volumes under this policy, or None when it goes on."""
    if volumes is None:
        return None
    if volume_index is None and reduce_4d is None:
        return (f"4D series with {volumes} volumes on the 4th axis (time points, echoes or diffusion directions); "
                f"set {OPTION_NAMES} to embed it")
    if volume_index is not None and not -volumes <= volume_index < volumes:
        return f"data.preprocessing.volume_index is {volume_index} but this 4D series holds {volumes} volumes"
    return None


class SelectVolume:
    """The chain's first step: a 4D series becomes one 3D volume (picked or averaged), or a ReadError; every other
    image passes unchanged."""

    def __init__(self, volume_index: int | None = None, reduce_4d: Literal["mean"] | None = None) -> None:
        self.volume_index = volume_index
        self.reduce_4d = reduce_4d

    def __call__(self, image: MedicalImage, source: str = "image") -> MedicalImage:
        volumes = volumes_of(image)
        problem = volume_problem(volumes, self.volume_index, self.reduce_4d)
        if problem:
            raise ReadError(source, problem, "volume-policy")
        if volumes is None:
            return image
        if self.volume_index is not None:
            array = image.array[self.volume_index : self.volume_index + 1 or None]
        else:
            array = image.array.mean(axis=0, keepdims=True, dtype=np.float64).astype(np.float32)
        metadata = {k: v for k, v in image.metadata.items() if k != VOLUMES_KEY}
        return MedicalImage(np.ascontiguousarray(array), image.affine, image.modality, image.nominal_range, metadata)

    def describe(self) -> dict[str, Any]:
        if self.volume_index is not None:
            return {"step": "volumes_4d", "policy": "index", "volume_index": self.volume_index}
        return {"step": "volumes_4d", "policy": self.reduce_4d or "skip"}
