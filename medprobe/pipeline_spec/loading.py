"""Read a pipeline spec from YAML: validation with readable errors, relative paths, environment overrides."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from medprobe.errors import SpecError
from medprobe.options import format_validation_error
from medprobe.pipeline_spec.pipeline import PipelineSpec
from medprobe.tracking.uri import TRACKING_URI_ENV, normalise_uri
from medprobe.yaml_files import read_mapping

M = TypeVar("M", bound=BaseModel)

#: Batch schedulers set these; they win over the spec file.
SITE_ENV = "MEDPROBE_SITE"


def load_spec(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> PipelineSpec:
    """Load, override from the environment, validate, and make every path absolute.

    Relative paths in the spec (manifest, weights, workdir, a relative SQLite file) resolve against the
    spec's own folder, so a job behaves the same from whatever directory a scheduler starts it.
    """
    spec_path = Path(path)
    env = os.environ if environ is None else environ
    raw = read_yaml(spec_path)
    if env.get(SITE_ENV):
        raw["site"] = env[SITE_ENV]
    env_uri = env.get(TRACKING_URI_ENV)
    if env_uri:
        raw.setdefault("tracking", {})
        if isinstance(raw["tracking"], dict):
            raw["tracking"] = {**raw["tracking"], "uri": normalise_uri(env_uri, Path.cwd())}
    spec = validated(PipelineSpec, raw, spec_path)
    return _resolve_paths(spec, spec_path.resolve().parent, keep_uri=bool(env_uri))


def validated(model: type[M], raw: dict[str, Any], source: Path) -> M:
    """`raw` as `model`, or a SpecError naming the file and every key that is wrong."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(f"{source}: {format_validation_error(exc)}") from None


def read_yaml(path: Path) -> dict[str, Any]:
    """The top-level mapping of a user's YAML file; a SpecError with the line for bad YAML or a key given twice."""
    if not path.is_file():
        raise SpecError(f"{path}: spec file not found")
    return read_mapping(path, SpecError, "keys (name, site, data, models, ...)")


def _resolve_paths(spec: PipelineSpec, base: Path, keep_uri: bool) -> PipelineSpec:
    data = spec.data.model_copy(update={"manifest": _absolute(spec.data.manifest, base)})
    models = [
        m.model_copy(update={"weights": _absolute(m.weights, base) if m.weights else None}) for m in spec.models
    ]
    tracking = spec.tracking
    if not keep_uri:
        tracking = tracking.model_copy(update={"uri": normalise_uri(tracking.uri, base)})
    return spec.model_copy(
        update={"data": data, "models": models, "tracking": tracking, "workdir": _absolute(spec.workdir, base)}
    )


def _absolute(path: Path, base: Path) -> Path:
    path = path.expanduser()
    return path if path.is_absolute() else (base / path).resolve()
