"""Build hook: ship the model cards inside the wheel.

`model_zoo/<name>/card.yaml` (and the card's README.md) at the top of the repository stay the one place people
edit cards. A wheel build copies them to `medprobe/model_zoo/<name>/`, where `medprobe.models.cards` finds them
with importlib.resources; no copy is ever committed. Everything else about the package is in pyproject.toml.
An editable install copies nothing: cards.py reads the checkout's `model_zoo/` directly.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ZOO = Path(__file__).resolve().parent / "model_zoo"
PACKAGED = Path("medprobe") / "model_zoo"  # inside the package; cards.py's PACKAGED_ZOO


def card_files() -> list[Path]:
    """Every card file, relative to model_zoo/; a build without cards fails rather than ship an empty zoo."""
    cards = sorted(ZOO.glob("*/card.yaml"))
    if not cards:
        raise SystemExit(f"medprobe build: no {ZOO}/<name>/card.yaml found; the wheel must ship the model cards")
    readmes = [card.parent / "README.md" for card in cards] + [ZOO / "README.md"]
    return sorted(p.relative_to(ZOO) for p in [*cards, *readmes] if p.is_file())


class BuildPyWithCards(build_py):
    """build_py, then the cards into build_lib (replacing any earlier copy, so a deleted card is not shipped)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        packaged = Path(self.build_lib) / PACKAGED
        shutil.rmtree(packaged, ignore_errors=True)
        for rel in card_files():
            (packaged / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ZOO / rel, packaged / rel)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not getattr(self, "editable_mode", False):
            outputs += [str(Path(self.build_lib) / PACKAGED / rel) for rel in card_files()]
        return outputs


setup(cmdclass={"build_py": BuildPyWithCards})
