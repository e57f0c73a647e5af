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
from pydantic import ValidationError

from medprobe.errors import MedprobeError
from medprobe.preprocess.model_defaults import ModelDefaults
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
    #: The authors' whole-volume preprocessing in data.preprocessing's vocabulary, with the `modalities` it is for:
    #: the job applies it where a spec is silent (medprobe.preprocess.model_defaults). Empty: none published.
    authors_preprocessing: dict[str, Any] = field(default_factory=dict)
    #: Vision-language models: the zero-shot templates the authors publish (`{}` is the class prompt).
    zero_shot_templates: list[str] = field(default_factory=list)


def authors_defaults(card: ModelCard) -> ModelDefaults | None:
    """The card's `authors_preprocessing`, checked; None when it has none. A malformed block is a broken card."""
    if not card.authors_preprocessing:
        return None
    try:
        return ModelDefaults.from_card(card.authors_preprocessing)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'block'}: {e['msg']}" for e in exc.errors())
        raise MedprobeError(f"model card '{card.name}': authors_preprocessing is not valid ({problems})") from None


def licence_label(card: ModelCard) -> str:
    """The licence's name (what a table column has room for), marked '*' when the card qualifies it (other terms for
    the weights than for the code, a non-commercial clause, revisions under another licence)."""
    full = card.licence.strip()
    text = full
    for stop in (" (", ";", ",", " at "):
        text = text.split(stop, 1)[0]
    return text if text == full else f"{text} *"


def input_label(card: ModelCard) -> str:
    """The input size the card gives (224, 96, 224×224×160)."""
    size = card.preprocessing.get("input_size", "-")
    return "×".join(map(str, size)) if isinstance(size, list) else str(size)


def defaults_label(card: ModelCard) -> str:
    """The authors' steps a job applies by default, in a few words ('-' when the card has none)."""
    defaults = authors_defaults(card)
    if defaults is None:
        return "-"
    values = defaults.values()
    words = []
    if "orientation" in values:
        words.append(values["orientation"])
    if "spacing" in values:
        words.append("×".join(f"{v:g}" for v in values["spacing"]) + "mm")
    intensity = values.get("intensity") or {}
    if intensity.get("mode") == "ct_window":
        low, high = defaults.steps.intensity.bounds()  # type: ignore[union-attr]
        words.append(f"HU {low:g}..{high:g}")
    elif intensity.get("mode") == "zscore":
        words.append("z-score (" + ("> 0" if intensity.get("statistics") == "positive" else "non-zero") + ")")
    if values.get("crop_foreground"):
        words.append("foreground crop")
    if "size" in values:
        fit = "pad" if values.get("fit") == "crop_or_pad" else "resize"
        words.append(f"{fit} {'×'.join(map(str, values['size']))}")
    return f"{', '.join(defaults.modalities)}: {', '.join(words)}"


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
