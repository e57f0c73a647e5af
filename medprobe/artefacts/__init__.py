"""Artefact suites for the robustness protocol: deterministic, seeded corruptions at five severities per modality.

`Corruption(artefact, severity, seed)(image, key)` corrupts one image; `artefacts_for(modality)` lists a suite and
`parse_artefacts(names, modality)` checks a spec's list. The parameter tables live next to each suite
(`artefacts_mri`, `artefacts_ct`, `artefacts_2d`); MONAI and TorchIO load only when an image is corrupted.
"""

from __future__ import annotations

from medprobe.artefacts.artefacts import SEVERITIES, Corruption, artefacts_for, parse_artefacts

__all__ = ["SEVERITIES", "Corruption", "artefacts_for", "parse_artefacts"]
