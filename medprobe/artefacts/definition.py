"""What an artefact is: a name, the images it applies to, the library that makes it, a table of parameters per
severity, and the function that applies one row of the table. Also how its random draws are seeded.

Randomness: every random quantity of an artefact (noise fields, motion paths, spike positions, the sign of a
contrast change) comes from `artefact_rng(seed, artefact, key)`, a fresh numpy Generator, never from global state.
The severity is deliberately not part of the seed: one sample's draw is the same at every severity and only its
magnitude follows the table (common random numbers), so a severity curve measures the strength of the artefact,
not five unrelated draws, and each sample's corruption grows monotonically with the severity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from medprobe.io.image import MedicalImage

SEVERITIES = (1, 2, 3, 4, 5)
"""Severity levels of every artefact; 0 (not listed) is the identity."""

Suite = Literal["mri", "ct", "2d"]
ParameterValue = float | int | str
Parameters = Mapping[str, ParameterValue]
#: Applies one severity: (a float32 copy of the array, the image for spacing/range, the severity's parameters, the
#: sample's random generator) → the corrupted array, same shape.
ApplyFunction = Callable[[np.ndarray, MedicalImage, Parameters, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class ArtefactDefinition:
    """One artefact of one suite. `table` has one row per severity 1–5; `fixed` holds what no severity changes.

    `library` names the class that does the work ("torchio.Motion", "monai.transforms.GibbsNoise"), or says
    "own: ..." where neither MONAI nor TorchIO has it. `random` says whether seed and key change the result.
    """

    name: str
    suite: Suite
    library: str
    table: Mapping[int, Parameters]
    apply: ApplyFunction
    random: bool
    fixed: Parameters | None = None

    def __post_init__(self) -> None:
        if tuple(sorted(self.table)) != SEVERITIES:
            raise ValueError(f"artefact {self.name!r}: table needs rows {SEVERITIES}, has {sorted(self.table)}")

    @property
    def qualified_name(self) -> str:
        """`suite.name`: 'blur' and 'noise' exist for CT and for 2D images with different units."""
        return f"{self.suite}.{self.name}"

    def parameters(self, severity: int) -> dict[str, ParameterValue]:
        if severity == 0:
            return {}
        return {**(self.fixed or {}), **self.table[severity]}


def stable_hash(text: str) -> int:
    """A 64-bit integer from a string, the same in every process (Python's `hash` is salted per process)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def artefact_rng(seed: int, qualified_name: str, key: str) -> np.random.Generator:
    """The generator of one sample's draws: a function of (seed, artefact, key) only (see the module docstring)."""
    return np.random.default_rng([seed, stable_hash(qualified_name), stable_hash(key)])


def legacy_state(rng: np.random.Generator) -> np.random.RandomState:
    """A `RandomState` for MONAI's Randomizable transforms (`set_random_state`), seeded from the sample's generator."""
    return np.random.RandomState(int(rng.integers(2**32)))


def signed(rng: np.random.Generator) -> float:
    """+1.0 or -1.0 with equal probability: the direction of a change whose size the table gives."""
    return 1.0 if rng.random() < 0.5 else -1.0
