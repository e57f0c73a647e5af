"""Package names that load on first use (PEP 562), so light imports stay light.

Reading an embedding table, or a federated site process started per message, must not pay for torch, the model
zoo, MLflow or the simulation engine just because the package's `__init__` names them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from typing import Any


def lazy_getattr(package: str, exports: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `package.<exports[name]>` (a module of the package) when `name` is
    first used."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
