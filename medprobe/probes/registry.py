"""The protocol registry, as timm registers models: one entry per probing protocol — its name, options model, the
task types it applies to, whether its metrics score its per-sample predictions, whether it reads patch tokens, and
its runner. The spec's `protocols:` keys, `medprobe evaluate --protocols` (choices and default), the Python API's
default, the dry-run plan, the paired comparisons and `evaluate_protocol` all read it; "unknown protocol" is
answered here, once, with the registered names.

Light: no torch. The built-in protocols register beside their options models (`medprobe.probes.options`), each
naming its runner by import path (`"medprobe.probes.linear:run_linear"`), imported on its first run, so a spec is
checked without torch. A test registers a protocol of its own with `registered_protocol(...)`, which removes it on
exit.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, Protocol

from medprobe.errors import ProbeError
from medprobe.probes.inputs import TASK_TYPES

if TYPE_CHECKING:
    import numpy as np

    from medprobe.probes.inputs import ProbeInputs
    from medprobe.probes.options import ProtocolOptions
    from medprobe.probes.result import ProtocolResult
    from medprobe.probes.splits import Fold



class Runner(Protocol):
    """A protocol's runner: `(inputs, folds, classes, options, seed, device)`, `options` the protocol's validated
    options model (typed; nothing re-checks it), `device` where the torch parts run (None: the CPU)."""

    def __call__(self, inputs: ProbeInputs, folds: list[Fold], classes: np.ndarray | None, options: Any, seed: int,
                 device: str | None = None, /) -> ProtocolResult: ...

#: Keys of the spec's `protocols:` section that are not probe protocols (the robustness step).
RESERVED_NAMES = frozenset({"robustness"})


@dataclass(frozen=True)
class ProtocolEntry:
    """One registered protocol. `runner`: the function `(inputs, folds, classes, options, seed) -> ProtocolResult`,
    or its import path `"module:function"`. `scores_predictions`: its per-sample predictions are what its metrics
    score, so analyses of the predictions (paired comparisons, subgroups) describe its reported metrics. `tokens`:
    it reads patch tokens, so it is not among the defaults (which run on the pooled embeddings alone). `text`: it
    reads the class embeddings of a model's text tower (`ProbeInputs.class_text`), so it is not a default either."""

    name: str
    options: type[ProtocolOptions]
    task_types: tuple[str, ...]
    scores_predictions: bool
    runner: str | Runner
    tokens: bool = False
    text: bool = False

    def applies_to(self, task_type: str) -> bool:
        return task_type in self.task_types

    def not_applicable(self, task_type: str) -> str | None:
        """Why the protocol is not run (nor logged) for `task_type`, or None when it applies."""
        if self.applies_to(task_type):
            return None
        return f"{self.name} is {' and '.join(self.task_types)} only; not run for {task_type}"

    def load_runner(self) -> Runner:
        if not isinstance(self.runner, str):
            return self.runner
        module, _, function = self.runner.partition(":")
        runner: Runner = getattr(import_module(module), function)
        return runner


_REGISTRY: dict[str, ProtocolEntry] = {}


def register_protocol(name: str, *, options: type[ProtocolOptions], task_types: Iterable[str] = TASK_TYPES,
                      scores_predictions: bool, runner: str | Runner, tokens: bool = False,
                      text: bool = False) -> ProtocolEntry:
    """Register a protocol under `name`, after those registered before it (the order protocols run and are
    reported in). A name already registered is refused: `unregister_protocol` it first."""
    types = tuple(task_types)
    if not name.isidentifier() or name in RESERVED_NAMES:
        raise ValueError(f"protocol name {name!r} must be an identifier other than {sorted(RESERVED_NAMES)}")
    if name in _REGISTRY:
        raise ValueError(f"protocol {name!r} is registered already")
    if not types or not set(types) <= set(TASK_TYPES):
        raise ValueError(f"protocol {name!r}: task types {types} must be some of {TASK_TYPES}")
    if isinstance(runner, str) and ":" not in runner:
        raise ValueError(f"protocol {name!r}: a runner path is 'module:function', got {runner!r}")
    entry = ProtocolEntry(name, options, types, bool(scores_predictions), runner, bool(tokens), bool(text))
    _REGISTRY[name] = entry
    return entry


def unregister_protocol(name: str) -> None:
    _REGISTRY.pop(name, None)


@contextmanager
def registered_protocol(name: str, **kwargs: Any) -> Iterator[ProtocolEntry]:
    """`register_protocol` for the duration of a `with` block (tests): the protocol is removed on exit."""
    _builtins()
    entry = register_protocol(name, **kwargs)
    try:
        yield entry
    finally:
        unregister_protocol(name)


def _builtins() -> dict[str, ProtocolEntry]:
    """The registry, with the built-in protocols (registered where their options models are written) loaded."""
    import_module("medprobe.probes.options")
    return _REGISTRY


def protocols() -> tuple[ProtocolEntry, ...]:
    """Every registered protocol, in registration order."""
    return tuple(_builtins().values())


def protocol_names() -> tuple[str, ...]:
    return tuple(_builtins())


def default_protocols() -> tuple[str, ...]:
    """The protocols run when none are named (the API, `medprobe evaluate`): those on the pooled embeddings."""
    return tuple(entry.name for entry in protocols() if not entry.tokens and not entry.text)


def prediction_protocols() -> tuple[str, ...]:
    """The protocols whose per-sample predictions their metrics score (paired comparisons, subgroups)."""
    return tuple(entry.name for entry in protocols() if entry.scores_predictions)


def applicable_protocols(names: Iterable[str], task_type: str) -> list[str]:
    """Of `names`, those that apply to `task_type`, in the order given."""
    return [name for name in names if get_protocol(name).applies_to(task_type)]


def get_protocol(name: str) -> ProtocolEntry:
    """The registered protocol `name`; ProbeError naming the registered ones when there is none."""
    check_protocols([name])
    return _REGISTRY[name]


def check_protocols(names: Iterable[str]) -> list[str]:
    """`names` as a list when every one is registered and there is at least one; else the one "unknown protocol"
    error, listing the registered names."""
    chosen = list(names)
    registry = _builtins()
    unknown = [name for name in chosen if name not in registry]
    if unknown or not chosen:
        what = f"unknown protocol {', '.join(map(repr, unknown))}" if unknown else "no protocol given"
        raise ProbeError(f"{what}; choose from {', '.join(registry)}")
    return chosen
