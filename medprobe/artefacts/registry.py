"""Which artefacts exist for which modality, and the errors that say so.

Three suites: MRI and CT for 3D volumes, one for 2D pictures (X-ray, fundus, photographs, and `other`, which
medprobe treats as a picture scaled by its stored range). 'blur' and 'noise' exist for CT and 2D pictures with
different units (mm and HU, fractions of the picture); a Corruption of either needs the modality to say which.
"""

from __future__ import annotations

from collections.abc import Iterable

from medprobe.artefacts.artefacts_2d import ARTEFACTS_2D
from medprobe.artefacts.artefacts_ct import CT_ARTEFACTS
from medprobe.artefacts.artefacts_mri import MRI_ARTEFACTS
from medprobe.artefacts.definition import ArtefactDefinition, Suite
from medprobe.errors import SpecError

SUITES: dict[Suite, dict[str, ArtefactDefinition]] = {
    "mri": {a.name: a for a in MRI_ARTEFACTS},
    "ct": {a.name: a for a in CT_ARTEFACTS},
    "2d": {a.name: a for a in ARTEFACTS_2D},
}
#: Keyed by the names of `medprobe.preprocess.options.Modality` (a test keeps the two in step).
SUITE_OF_MODALITY: dict[str, Suite] = {"mri": "mri", "ct": "ct", "xray": "2d", "fundus": "2d", "photo": "2d",
                                       "other": "2d"}
SPATIAL_DIMS: dict[Suite, int] = {"mri": 3, "ct": 3, "2d": 2}
_SUITE_WORDS: dict[Suite, str] = {"mri": "MRI volumes", "ct": "CT volumes", "2d": "2D pictures"}


def suite_of(modality: str) -> Suite:
    if modality not in SUITE_OF_MODALITY:
        raise SpecError(f"no artefact suite for modality {modality!r}; modalities: {', '.join(SUITE_OF_MODALITY)}")
    return SUITE_OF_MODALITY[modality]


def artefacts_for(modality: str) -> tuple[str, ...]:
    """The artefact names of the suite that applies to `modality` (a name of `medprobe.preprocess.options.Modality`)."""
    return tuple(SUITES[suite_of(modality)])


def lookup(artefact: str, modality: str | None = None) -> ArtefactDefinition:
    """The definition of `artefact` for `modality`; without a modality, the one suite that has the name."""
    if modality is not None:
        suite = suite_of(modality)
        if artefact not in SUITES[suite]:
            raise SpecError(_not_in_suite([artefact], suite, f"modality {modality!r}"))
        return SUITES[suite][artefact]
    holders = [suite for suite, names in SUITES.items() if artefact in names]
    if not holders:
        raise SpecError(f"unknown artefact {artefact!r}; " + _all_suites())
    if len(holders) > 1:
        raise SpecError(f"artefact {artefact!r} exists for {' and '.join(_SUITE_WORDS[s] for s in holders)} with "
                        "different units; give the modality to say which")
    return SUITES[holders[0]][artefact]


def parse_artefacts(names: str | Iterable[str] | None, modality: str) -> tuple[str, ...]:
    """Validate artefact names for `modality`: a list, a comma-separated string, or None / "all" for the whole suite.

    Order is kept and repeats dropped. Unknown names are all reported at once, with the names that are valid.
    """
    suite = suite_of(modality)
    if names is None or names == "all":
        return tuple(SUITES[suite])
    items = [n.strip() for n in names.split(",")] if isinstance(names, str) else [str(n).strip() for n in names]
    items = [n for n in items if n]
    if not items:
        raise SpecError(f"no artefacts given; for modality {modality!r}: {', '.join(SUITES[suite])} (or 'all')")
    unknown = [n for n in items if n not in SUITES[suite]]
    if unknown:
        raise SpecError(_not_in_suite(unknown, suite, f"modality {modality!r}"))
    return tuple(dict.fromkeys(items))


def check_dimensions(definition: ArtefactDefinition, spatial_dims: int, shape: tuple[int, ...]) -> None:
    """Refuse a 3D artefact on a 2D picture and a 2D one on a volume, naming what would apply."""
    want = SPATIAL_DIMS[definition.suite]
    if spatial_dims == want:
        return
    kind = "a 2D picture (C, X, Y)" if spatial_dims == 2 else "a 3D volume (C, X, Y, Z)"
    fitting = [s for s, dims in SPATIAL_DIMS.items() if dims == spatial_dims]
    valid = "; ".join(f"for {_SUITE_WORDS[s]}: {', '.join(SUITES[s])}" for s in fitting)
    raise SpecError(f"artefact {definition.name!r} is for {_SUITE_WORDS[definition.suite]} but the image is {kind} "
                    f"of shape {shape}; artefacts {valid}")


def check_modality(definition: ArtefactDefinition, image_modality: str | None) -> None:
    """Refuse an artefact of another suite than the image's modality (HU noise on an MRI volume, say)."""
    if image_modality not in SUITE_OF_MODALITY:  # None, or a DICOM modality medprobe has no suite for
        return
    if SUITE_OF_MODALITY[image_modality] != definition.suite:
        raise SpecError(_not_in_suite([definition.name], SUITE_OF_MODALITY[image_modality],
                                      f"this {image_modality!r} image"))


def _not_in_suite(artefacts: list[str], suite: Suite, what: str) -> str:
    names = ", ".join(repr(a) for a in artefacts)
    plural = "s" if len(artefacts) > 1 else ""
    elsewhere = [f"{a!r} is for {_SUITE_WORDS[s]}" for a in artefacts
                 for s, members in SUITES.items() if a in members and s != suite]
    hint = f" ({'; '.join(elsewhere)})" if elsewhere else ""
    return f"unknown artefact{plural} {names} for {what}{hint}; valid: {', '.join(SUITES[suite])}"


def _all_suites() -> str:
    return "; ".join(f"{_SUITE_WORDS[s]}: {', '.join(names)}" for s, names in SUITES.items())
