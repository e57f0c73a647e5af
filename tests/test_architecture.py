"""The package graph that /work/shared/ARCHITECTURE.md describes, checked on the source: no import cycle between
packages, lower layers never import higher ones, and each package's "knows nothing about" rule holds.

Imports are read from the syntax tree of every module, those inside functions included (a lazy import is still a
dependency), so the check needs no package to be importable.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import pytest

import medprobe

PACKAGE = Path(medprobe.__file__).parent

#: ARCHITECTURE.md's layers, bottom first. `pipeline_spec` (ARCHITECTURE.md's `spec`) composes the option models of
#: the layers below it, so it sits with the steps that read it.
LAYERS: list[set[str]] = [
    {"io", "privacy", "artefacts", "metrics"},
    {"preprocess", "models", "probes"},
    {"embed", "tracking", "zeroshot"},
    {"evaluation"},
    {"pipeline_spec", "jobs", "compare", "federated", "transfer"},
    {"cli", "demo"},
]
#: Top-level modules that every layer may use (they import no package of medprobe).
BASE_MODULES = {"errors", "exit_codes", "options", "lazy_exports", "interrupts", "yaml_files", "split_column"}

#: "knows nothing about": imports (first-party packages or third-party modules) a package must not make.
FORBIDDEN: dict[str, set[str]] = {
    "pipeline_spec": {"torch", "mlflow"},
    "io": {"medprobe.models"},
    "embed": {"medprobe.probes"},
    "probes": {"mlflow", "medprobe.tracking"},
    "metrics": {"medprobe.models", "torch", "mlflow"},
    "tracking": {"medprobe.probes", "medprobe.evaluation", "medprobe.embed"},
    "compare": {"medprobe.io"},
    "federated": {"medprobe.io"},
    "evaluation": {"mlflow", "medprobe.tracking", "medprobe.io"},
    "transfer": {"medprobe.io"},
}
#: Where a package may reach into `medprobe.io`, only its public image type (never the readers' internals).
IMAGE_ONLY = {"preprocess", "jobs", "artefacts", "models"}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "medprobe":
                names.update(f"medprobe.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _package_of(module: Path) -> str:
    parts = module.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else module.stem


@lru_cache(maxsize=1)
def _modules() -> dict[str, set[str]]:
    """Every imported name, by importing package (or top-level module)."""
    found: dict[str, set[str]] = defaultdict(set)
    for module in PACKAGE.rglob("*.py"):
        found[_package_of(module)] |= _imports(module)
    return found


def _graph() -> dict[str, set[str]]:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    graph: dict[str, set[str]] = {}
    for source, names in _modules().items():
        targets = {name.split(".")[1] for name in names if name.startswith("medprobe.")}
        graph[source] = {t for t in targets if t in packages and t != source}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target):], target]
            if target not in state and (found := visit(target)):
                return found
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def _layer(name: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if name in layer)


def test_every_package_has_a_layer() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set().union(*LAYERS)


def test_the_package_graph_is_acyclic() -> None:
    assert _cycle(_graph()) is None, f"import cycle: {' → '.join(_cycle(_graph()) or [])}"


def test_the_cycle_check_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_lower_layers_never_import_higher_ones() -> None:
    wrong = [f"{source} → {target}" for source, targets in _graph().items() if source in set().union(*LAYERS)
             for target in targets if _layer(target) > _layer(source)]
    assert not wrong, wrong


def test_base_modules_import_no_package() -> None:
    graph = _graph()
    assert {module: graph.get(module, set()) for module in BASE_MODULES} == {module: set() for module in BASE_MODULES}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_what_a_package_knows_nothing_about(package: str) -> None:
    names = _modules()[package]
    hits = sorted(name for name in names for banned in FORBIDDEN[package]
                  if name == banned or name.startswith(banned + "."))
    assert not hits, f"{package} imports {hits}"


@pytest.mark.parametrize("package", sorted(IMAGE_ONLY))
def test_readers_internals_stay_in_io(package: str) -> None:
    allowed = {"medprobe.io", "medprobe.io.image"}
    reaching = sorted(name for name in _modules()[package] if name.startswith("medprobe.io.") and name not in allowed)
    assert not reaching, f"{package} imports {reaching}"
