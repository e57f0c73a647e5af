"""The one in-memory image every reader returns and every preprocessing step consumes."""

from __future__ import annotations

from dataclasses import dataclass, field

import nibabel as nib
import numpy as np

#: Metadata keys a reader may keep. Everything else (names, IDs, dates, UIDs, descriptions) is dropped
#: at read time, so nothing identifying can reach a log, a table or MLflow further down.
SAFE_METADATA_KEYS = frozenset(
    {
        "format",
        "stored_dtype",
        "bits_stored",
        "photometric",
        "modality",
        "rescale_applied",
        "slice_count",
        "frames",
        "transfer_syntax",
        "geometry",  # DICOM: where the affine came from ("patient", "pixel spacing only", ... frame stacks)
        "warnings",  # DICOM: what was odd but tolerated (spacing, gaps, tilt); built from numbers only
        "volumes",  # 4D series: the channels are this many volumes of a 4th axis (time, echoes, directions)
    }
)
#: Metadata key marking a 4D series held as channels; `medprobe.preprocess.volumes` decides what a job does with it.
VOLUMES_KEY = "volumes"


@dataclass(frozen=True)
class MedicalImage:
    """Physical values in channel-first layout with a voxel-to-RAS affine.

    `array` has shape (C, X, Y[, Z]) in float32: C is 1 for grayscale, 3 for RGB. Spatial axis i follows the
    affine's column i. For 2D images the affine is 4×4 with a unit third axis. `nominal_range` is the stored
    value range of integer images (0–255 for 8-bit PNG), used to scale photographs; None for physical units.
    """

    array: np.ndarray
    affine: np.ndarray
    modality: str | None = None
    nominal_range: tuple[float, float] | None = None
    metadata: dict[str, str | int | float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.array.ndim not in (3, 4):
            raise ValueError(f"array must be (C, X, Y) or (C, X, Y, Z); got shape {self.array.shape}")
        unsafe = set(self.metadata) - SAFE_METADATA_KEYS
        if unsafe:
            raise ValueError(f"metadata keys outside the allow-list: {sorted(unsafe)}")

    @property
    def spatial_dims(self) -> int:
        return self.array.ndim - 1

    @property
    def channels(self) -> int:
        return int(self.array.shape[0])

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(int(s) for s in self.array.shape[1:])

    @property
    def spacing(self) -> tuple[float, ...]:
        """Voxel size in mm along each spatial axis (column norms of the affine)."""
        norms = np.sqrt((self.affine[:3, :3] ** 2).sum(axis=0))
        return tuple(float(v) for v in norms[: self.spatial_dims])

    @property
    def orientation(self) -> str:
        """Axis codes such as 'RAS' or 'LPS' (where each index axis points); 2D images report 2 codes."""
        codes = nib.aff2axcodes(self.affine)
        return "".join(c or "?" for c in codes[: self.spatial_dims])
