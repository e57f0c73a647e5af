"""Model cards: the facts about a model's published weights, one YAML file per model in `model_zoo/` (in a wheel:
`medprobe/model_zoo/`, copied there by the build)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from medprobe.errors import MedprobeError
from medprobe.yaml_files import load_yaml, yaml_problem

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

ZOO_ENV = "MEDPROBE_MODEL_ZOO"
#: The cards inside the installed package: the wheel build (setup.py) copies model_zoo/ to medprobe/model_zoo/.
PACKAGED_ZOO = "model_zoo"


@dataclass(frozen=True)
class ModelCard:
    name: str
    architecture: str
    embed_dim: int
    checkpoint_file: str | None = None
    sha256: str | None = None
    source: str = "no published weights"
    preprocessing: dict[str, Any] = field(default_factory=dict)
    licence: str = "unknown"
    citation: str = ""
    summary: str = ""
    #: Where `medprobe models fetch` gets the upstream files, on a connected machine: `{hub: "<org>/<name>",
    #: revision: "<branch, tag or commit>", files: [<file names>]}` for a Hugging Face hub repository (files left out:
    #: the whole snapshot), or `{url: "https://...", file: "<name to save as>"}` for one upstream file. Empty: the
    #: weights are not downloadable (gated, or there are none).
    fetch: dict[str, Any] = field(default_factory=dict)


def licence_label(card: ModelCard) -> str:
    """The licence's name (what a table column has room for), marked '*' when the card qualifies it (other terms for
    the weights than for the code, a non-commercial clause, revisions under another licence)."""
    full = card.licence.strip()
    text = full
    for stop in (" (", ";", ",", " at "):
        text = text.split(stop, 1)[0]
    return text if text == full else f"{text} *"


def zoo_dirs() -> list[Traversable]:
    """Where cards are looked for, first match wins.

    $MEDPROBE_MODEL_ZOO (your own copies, e.g. with the sha256 of your weights recorded), then the cards shipped
    in the installed package, then the source checkout's model_zoo/ (an editable install or a plain checkout).
    """
    candidates: list[Traversable] = []
    override = os.environ.get(ZOO_ENV)
    if override:
        if not Path(override).is_dir():
            raise MedprobeError(f"${ZOO_ENV}={override} is not a folder (it should hold <model>/card.yaml)")
        candidates.append(Path(override))
    candidates.append(resources.files("medprobe").joinpath(PACKAGED_ZOO))
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():  # not site-packages, where a top-level model_zoo/ is someone else's
        candidates.append(checkout / "model_zoo")
    return [c for c in candidates if c.is_dir()]


@cache
def load_card(name: str) -> ModelCard:
    """The card of zoo model `name`; every registered zoo model has one, so a missing card is a broken install.

    Never a made-up card: without it the checkpoint's sha256 goes unchecked and random-init runs go unflagged.
    """
    folders = zoo_dirs()
    for folder in folders:
        card = folder.joinpath(name).joinpath("card.yaml")
        if card.is_file():
            return _parse(card, name)
    where = ", ".join(str(f) for f in folders) or "no model_zoo folder found"
    raise MedprobeError(
        f"no model card for '{name}' (looked for {name}/card.yaml in: {where}); this medprobe installation lacks "
        f"its model cards (reinstall it from a wheel or the source checkout) or set ${ZOO_ENV} to a folder of cards"
    )


def _parse(card: Traversable, name: str) -> ModelCard:
    try:
        raw = load_yaml(card.read_text(encoding="utf-8"))
        return ModelCard(**raw)
    except yaml.YAMLError as exc:
        raise MedprobeError(f"{card}: not a valid model card for '{name}' ({yaml_problem(exc)})") from None
    except TypeError as exc:
        raise MedprobeError(f"{card}: not a valid model card for '{name}' ({type(exc).__name__}: {exc})") from None
