"""What the chain needs of an image corruption, so that `preprocess` knows nothing of the artefact suites.

`medprobe.artefacts.Corruption` satisfies it; the chain applies any object that does, and its description
becomes part of the chain's (and so of the embedding cache key's) description.
"""

from __future__ import annotations

from typing import Any, Protocol

from medprobe.io.image import MedicalImage


class ImageCorruption(Protocol):
    def __call__(self, image: MedicalImage, key: str) -> MedicalImage:
        """`image` corrupted deterministically for `key` (a digest of the image's content)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Everything that determines the corruption: it joins the chain's description."""
        ...
