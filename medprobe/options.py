"""The base of every layer's options model, and the one way their validation errors are shown to a user.

Each layer owns its options (a protocol's in `medprobe.probes.options`, preprocessing in
`medprobe.preprocess.options`, tracking in `medprobe.tracking.options`); the pipeline spec only composes them.
Every model forbids unknown keys, so a typo is an error that names the key instead of a silently ignored option.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

#: The most seeds a protocol repeats over (`seeds`: seed, seed+1, ...).
MAX_SEED_REPEATS = 100
#: The largest first seed: numpy's legacy state and scikit-learn's `random_state` take 32-bit seeds, and the last
#: repeat (seed + 99) must still be one.
SEED_MAX = 2**32 - MAX_SEED_REPEATS
#: Every seed a user writes (spec, options models, CLI): a whole number in 0..SEED_MAX, never `True` or `"5"`.
Seed = Annotated[StrictInt, Field(ge=0, le=SEED_MAX)]
#: Subject-bootstrap resamples for a 95 % interval, unless an option says otherwise (0: no interval).
N_RESAMPLES = 1000
#: A bootstrap option: resamples for the intervals, 0 for none.
Bootstrap = Annotated[StrictInt, Field(ge=0, le=100000)]

#: pydantic's discriminator tags of tagged unions: not keys the user wrote, so left out of error locations.
_DISCRIMINATOR_TAGS = {"percentile", "zscore", "ct_window", "scale01", "none"}


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def field_default(model: type[BaseModel], name: str) -> Any:
    """The default of one field, for front ends (CLI flags) that must show the same default as the model."""
    return model.model_fields[name].get_default(call_default_factory=True)


def format_validation_error(exc: ValidationError) -> str:
    """One line per problem, each naming the key path and what was expected; joined by '; '."""
    parts = []
    for error in exc.errors():
        location = _dotted(error["loc"])
        kind = error["type"]
        if kind == "extra_forbidden":
            parts.append(f"unknown key '{location}'")
        elif kind == "missing":
            parts.append(f"missing required key '{location}'")
        else:
            got = error.get("input")
            shown = f" (got {got!r})" if not isinstance(got, dict | list) else ""
            parts.append(f"'{location}': {error['msg']}{shown}" if location else f"{error['msg']}{shown}")
    return "; ".join(parts)


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _DISCRIMINATOR_TAGS:
            continue
        else:
            out += f".{part}" if out else str(part)
    return out
