"""The identity of a table's embedding space: which encoder made the vectors and how the images were prepared.

A probe head fitted on one site's embeddings applies to another site's only when both came from the same encoder
(`fingerprint`: architecture, weights, options, model input); a different site preprocessing (spacing, intensity
window, 2D views) keeps the space but shifts the features, which a transfer run notes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from medprobe.errors import MedprobeError

if TYPE_CHECKING:  # the model zoo imports torch and MONAI; reading a table's space needs neither
    from medprobe.models import Encoder


@dataclass(frozen=True)
class FeatureSpace:
    model: str  # the job's model key (name or alias), as in the runs' `medprobe.model` tag
    architecture: str  # the encoder's zoo name
    fingerprint: str
    weights: str  # "sha256:…" or "random-init"
    preprocessing: str  # digest of the preprocessing chain's description
    embed_dim: int

    @property
    def pretrained(self) -> bool:
        return self.weights != "random-init"

    @classmethod
    def of_encoder(cls, model: str, encoder: Encoder, preprocessing: list[dict[str, Any]]) -> FeatureSpace:
        return cls(model, encoder.name, encoder.fingerprint, encoder.weights_label,
                   preprocessing_digest(preprocessing), encoder.embed_dim)

    @classmethod
    def of_table(cls, model: str, metadata: dict[str, Any]) -> FeatureSpace:
        """From an embedding table's metadata (`medprobe.embed.table.read_table`)."""
        missing = [k for k in ("encoder_fingerprint", "model", "weights", "embed_dim", "preprocessing")
                   if k not in metadata]
        if missing:
            raise MedprobeError(f"embedding table of model '{model}' lacks metadata {missing}; re-run the site job "
                                "to rebuild it")
        return cls(model, str(metadata["model"]), str(metadata["encoder_fingerprint"]), str(metadata["weights"]),
                   preprocessing_digest(metadata["preprocessing"]), int(metadata["embed_dim"]))


def preprocessing_digest(description: list[dict[str, Any]]) -> str:
    """The same digest for a chain's `describe()` and for its JSON round trip through a table's metadata."""
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()[:16]
