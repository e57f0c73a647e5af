"""Checkpoints that survive a killed job, and the exported model the zoo adapter loads.

Layout of the output folder:
    config.json                         the full configuration of the run (written first)
    checkpoints/stage{1,2}.json         the commit record: step, loss log, file names (replaced atomically, last)
    checkpoints/stage{1,2}-NNNNNNN.safetensors        model weights (stage 2 also `ema.*`)
    checkpoints/stage{1,2}-NNNNNNN.optim.safetensors  optimizer tensors; its param_groups as JSON metadata
    ldae.safetensors + ldae.json        the trained model (EMA weights where used) and its config: `weights:`

Every file is written to a temporary name and moved into place with `os.replace`; the record is written after
the files it names, so a job killed mid-write resumes from the previous complete checkpoint. Nothing is
unpickled: weights and optimizer state are safetensors, everything else JSON.

Digests: a stage record holds the sha256 of each file it names, and `ldae.json` the sha256 of `ldae.safetensors`
and the digest of the network config, each written with (or before) the files they describe and checked before a
file is loaded, so a damaged checkpoint is a `CheckpointError` naming the file, never a resumed run or an encoder
with altered weights. Hashing is `medprobe.models.weights.sha256_of`, which the loader already runs on every
weights file (the models layer cannot use `medprobe.embed.integrity`). Output folders from before digests load
with a warning that they are unverified.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file

from medprobe.errors import MedprobeError, WeightsError
from medprobe.models.ldae.config import LDAEConfig
from medprobe.models.ldae.data import write_json_atomic
from medprobe.models.weights import sha256_of

log = logging.getLogger("medprobe.models")

CHECKPOINTS = "checkpoints"
EXPORT_WEIGHTS = "ldae.safetensors"
EXPORT_CONFIG = "ldae.json"
CONFIG_FILE = "config.json"
#: ldae.json's keys for the digests of the exported weights file and of the network config.
WEIGHTS_DIGEST = "weights_sha256"
CONFIG_DIGEST = "config_digest"


class CheckpointError(WeightsError):
    """A checkpoint file differs from the digest recorded when it was written: damaged on disk."""

    def __init__(self, path: Path, record: Path) -> None:
        super().__init__(f"{path}: does not match the digest recorded in {record.name} (damaged on disk); restore "
                         "the pretraining folder from a backup, or run `medprobe pretrain ldae` again with a new --out")


@dataclass
class StageRecord:
    stage: int
    step: int
    model: str
    optimizer: str
    log: list[dict[str, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)  # file name → digest; empty in records before digests


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> str:
    """Write `path` whole (temporary name, then rename); return its sha256."""
    with _staged(path) as tmp:
        _write_tensors(tmp, tensors, metadata)
        return sha256_of(tmp)


@contextlib.contextmanager
def _staged(path: Path) -> Iterator[Path]:
    """A temporary name to write; renamed to `path` when the body returns, removed when it raises."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def _write_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None) -> None:
    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)


def verify_file(path: Path, expected: str | None, record: Path, found: str | None = None) -> None:
    """CheckpointError when `path` differs from the digest `record` holds for it; a warning when it holds none.
    `found`: the file's sha256 where the caller has computed it already."""
    if expected is None:
        log.warning("%s: no digest recorded in %s (written before medprobe recorded them); used unverified",
                    path, record.name)
    elif (found or sha256_of(path)) != expected:
        raise CheckpointError(path, record)


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """An optimizer's state as flat tensors (`state.<param>.<name>`) plus its param_groups as JSON metadata."""
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            tensors[f"state.{index}.{name}"] = value if torch.is_tensor(value) else torch.tensor(value)
    return tensors, {"param_groups": json.dumps(state["param_groups"])}


def load_optimizer(optimizer: torch.optim.Optimizer, path: Path) -> None:
    with safe_open(str(path), framework="pt") as handle:
        groups = json.loads(handle.metadata()["param_groups"])
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in load_file(str(path)).items():
        _, index, name = key.split(".", 2)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_stage(out: Path, record: StageRecord, model_state: dict[str, torch.Tensor],
               optimizer: torch.optim.Optimizer) -> None:
    """Write the step's files, then the record naming them, then drop the stage's older files."""
    folder = out / CHECKPOINTS
    stem = f"stage{record.stage}-{record.step:07d}"
    record.model, record.optimizer = f"{stem}.safetensors", f"{stem}.optim.safetensors"
    tensors, metadata = optimizer_tensors(optimizer)
    record.sha256 = {record.model: save_tensors(folder / record.model, model_state, {"step": str(record.step)}),
                     record.optimizer: save_tensors(folder / record.optimizer, tensors, metadata)}
    write_json_atomic(folder / f"stage{record.stage}.json", asdict(record))
    for old in folder.glob(f"stage{record.stage}-*.safetensors"):
        if not old.name.startswith(stem):
            old.unlink(missing_ok=True)


def load_stage(out: Path, stage: int) -> StageRecord | None:
    """The stage's last complete checkpoint record, its files checked against their digests; None before any."""
    path = out / CHECKPOINTS / f"stage{stage}.json"
    if not path.is_file():
        return None
    try:
        record = StageRecord(**json.loads(path.read_text(encoding="utf-8")))
    except (ValueError, TypeError) as exc:
        raise MedprobeError(f"{path}: unreadable checkpoint record ({exc}); start again with a new --out") from None
    for name in (record.model, record.optimizer):
        if not (out / CHECKPOINTS / name).is_file():
            raise MedprobeError(f"{path} names {name}, which is missing; start again with a new --out")
        verify_file(out / CHECKPOINTS / name, record.sha256.get(name), path)
    return record


def stage_model_state(out: Path, record: StageRecord) -> dict[str, torch.Tensor]:
    return load_file(str(out / CHECKPOINTS / record.model))


def export_model(out: Path, weights: dict[str, torch.Tensor], config: LDAEConfig, extra: dict[str, Any]) -> Path:
    """The adapter's input: config first (with the digest of the weights, written under a temporary name just
    before), weights last, so a weights file always has its config beside it."""
    with _staged(out / EXPORT_WEIGHTS) as tmp:
        _write_tensors(tmp, weights, {"format": "medprobe-ldae-v1"})
        write_json_atomic(out / EXPORT_CONFIG, {
            "format": "medprobe-ldae-v1", "config": config.model_dump(mode="json"), **extra,
            WEIGHTS_DIGEST: sha256_of(tmp), CONFIG_DIGEST: config.digest(),
        })
    return out / EXPORT_WEIGHTS


def verify_export(weights: Path, weights_sha256: str, config_path: Path, config: LDAEConfig) -> None:
    """CheckpointError when the exported weights (their sha256 as the loader computed it) or the network config
    read from `config_path` differ from the digests written into it."""
    recorded = json.loads(config_path.read_text(encoding="utf-8"))  # valid JSON: `config` was read from it
    verify_file(weights, recorded.get(WEIGHTS_DIGEST), config_path, found=weights_sha256)
    if WEIGHTS_DIGEST in recorded and recorded.get(CONFIG_DIGEST) != config.digest():
        raise CheckpointError(config_path, config_path)
