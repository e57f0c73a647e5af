"""One corruption: an artefact at a severity with a seed, applied to a MedicalImage before preprocessing.

Its `describe()` belongs in the embedding cache key and the run's record next to the preprocessing chain's, so
embeddings of corrupted and clean images never mix and every figure says which parameters made it. The draws of
random artefacts depend on (artefact, seed, key) only, where `key` names the sample (the file digest, say): the same
sample gets the same corruption in every run, on every worker, whatever else ran before.

Severity 0 is the identity and returns the image itself. Otherwise the result is a new float32 MedicalImage with
the same shape, affine, modality, nominal range and metadata; the input is never changed. NaN voxels are set to the
image minimum first (as the intensity step would), so a Fourier-domain artefact cannot spread them everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medprobe.artefacts.definition import SEVERITIES, ArtefactDefinition, ParameterValue, artefact_rng
from medprobe.artefacts.registry import artefacts_for, check_dimensions, check_modality, lookup, parse_artefacts
from medprobe.errors import SpecError
from medprobe.io.image import MedicalImage

__all__ = ["SEVERITIES", "Corruption", "artefacts_for", "parse_artefacts"]


@dataclass(frozen=True)
class Corruption:
    """`artefact` at `severity` (0 = none, 1–5 as in the artefact's table) with random draws seeded by `seed`.

    `modality` (optional) picks the suite; it is needed only for 'blur' and 'noise', which exist for CT (mm, HU) and
    for 2D pictures (fractions of the picture). With it, the artefact must belong to that modality's suite.
    """

    artefact: str
    severity: int
    seed: int = 0
    modality: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.severity, bool) or not isinstance(self.severity, int) or not 0 <= self.severity <= 5:
            raise SpecError(f"artefact {self.artefact!r}: severity must be an integer 0–5 (0 = none), "
                            f"got {self.severity!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise SpecError(f"artefact {self.artefact!r}: seed must be a non-negative integer, got {self.seed!r}")
        self.definition  # noqa: B018 - validates the name (and modality) now, not at the first image

    @property
    def definition(self) -> ArtefactDefinition:
        return lookup(self.artefact, self.modality)

    def parameters(self) -> dict[str, ParameterValue]:
        """The table's row for this severity (empty at severity 0), with the parameters no severity changes."""
        return self.definition.parameters(self.severity)

    def describe(self) -> dict[str, object]:
        definition = self.definition
        return {
            "artefact": self.artefact,
            "suite": definition.suite,
            "severity": self.severity,
            "seed": self.seed,
            "random": definition.random,
            "parameters": self.parameters(),
            "library": definition.library,
        }

    def __call__(self, image: MedicalImage, key: str = "") -> MedicalImage:
        definition = self.definition
        check_dimensions(definition, image.spatial_dims, tuple(image.array.shape))
        check_modality(definition, image.modality)
        if self.severity == 0:
            return image
        array = np.array(image.array, dtype=np.float32, copy=True)
        if np.isnan(array).any():
            array[np.isnan(array)] = np.nanmin(array)
        rng = artefact_rng(self.seed, definition.qualified_name, key)
        out = definition.apply(array, image, self.parameters(), rng)
        if out.shape != image.array.shape:  # a library changed the grid: a bug here, not the user's
            raise RuntimeError(f"artefact {self.artefact!r} returned shape {out.shape}, not {image.array.shape}")
        return MedicalImage(np.ascontiguousarray(out, dtype=np.float32), np.array(image.affine, copy=True),
                            image.modality, image.nominal_range, dict(image.metadata))
