"""Pretraining data: manifest rows → preprocessed volumes cached once under the output folder.

Each readable row is read with `read_image`, brought to the model input by the same `PreprocessChain` the zoo
adapter's `InputSpec` implies, and stored as float16 `.npy` (values in [0, 1]), so that steps and resumed runs
never re-read or re-resample the originals. Unreadable rows are skipped with a reason that omits the path.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset

from medprobe.errors import MedprobeError, ReadError
from medprobe.io import load_manifest, read_image
from medprobe.models.ldae.config import LDAEConfig
from medprobe.preprocess import InputSpec, PreprocessChain
from medprobe.preprocess.options import Preprocessing, PreprocessOptions
from medprobe.split_column import pretraining_rows, table_split

INDEX_FILE = "volumes/index.json"


def input_spec(config: LDAEConfig) -> InputSpec:
    return InputSpec(spatial_dims=3, size=tuple(config.data.size), channels=1, mean=None, std=None,
                     interpolation="trilinear")


def preprocess_chain(config: LDAEConfig) -> PreprocessChain:
    data = config.data
    options = PreprocessOptions(modality=data.modality,
                                preprocessing=Preprocessing(spacing=data.spacing, size=data.size, fit=data.fit))
    return PreprocessChain(options, input_spec(config))


@dataclass
class PreparedVolumes:
    train: list[Path]
    holdout: list[Path]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0

    def batch(self, indices: list[int]) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.load(self.train[i]) for i in indices]).astype(np.float32))

    def holdout_batch(self) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.load(p) for p in self.holdout]).astype(np.float32))


class _RowDataset(Dataset[tuple[int, np.ndarray | None, str | None]]):
    def __init__(self, paths: list[str], modality: str, chain: PreprocessChain) -> None:
        self.paths, self.modality, self.chain = paths, modality, chain

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str | None]:
        path = self.paths[index]
        try:
            volume = self.chain(read_image(path, self.modality), source=path)[0]
            if not torch.isfinite(volume).all():
                raise ReadError(path, "preprocessing produced non-finite values", "not-finite")
            return index, volume.clamp(0, 1).numpy().astype(np.float16), None
        except ReadError as exc:
            return index, None, f"{exc.category}: {exc.reason.replace(path, '<file>')}"
        except Exception as exc:  # noqa: BLE001 - one bad file is skipped, never fatal
            return index, None, f"unexpected {type(exc).__name__}: {str(exc).replace(path, '<file>')[:200]}"


def prepare_volumes(config: LDAEConfig, manifest: Path, out: Path, workers: int = 0,
                    progress: bool = True) -> PreparedVolumes:
    """Read, preprocess and cache every row (reusing a cache made from the same manifest and config)."""
    table = load_manifest(manifest)
    chain = preprocess_chain(config)
    digest = _digest(table, chain)
    index_path = out / INDEX_FILE
    if index_path.is_file():
        index = json.loads(index_path.read_text(encoding="utf-8"))
        if index.get("digest") == digest:  # the volumes are reused; the hold-out follows this config's seed
            cached = sorted(index["train"] + index["holdout"])
            index["train"], index["holdout"] = _split_rows(table, cached, config.train.holdout, config.train.seed)
            return _from_index(out, index)
    folder = out / "volumes"
    folder.mkdir(parents=True, exist_ok=True)
    readable: list[int] = []
    skipped: list[dict[str, Any]] = []
    # torch types collate_fn as taking a batch (list); with batch_size=None it gets each sample as is
    loader = DataLoader(_RowDataset(list(table["path"]), config.data.modality, chain), batch_size=None,
                        num_workers=workers, collate_fn=_identity)  # type: ignore[arg-type]
    from tqdm import tqdm

    for row, volume, reason in tqdm(loader, total=len(table), desc="reading volumes", unit="vol",
                                    disable=not progress):
        if volume is None:
            skipped.append({"row": int(row) + 2, "reason": reason})  # spreadsheet row: the header is row 1
            continue
        _save_npy(folder / f"{row:06d}.npy", volume)
        readable.append(int(row))
    if not readable:
        raise MedprobeError(f"{manifest}: none of the {len(table)} images could be read "
                            f"(first reason: {skipped[0]['reason'] if skipped else 'none'})")
    train, holdout = _split_rows(table, readable, config.train.holdout, config.train.seed)
    if not train:
        raise MedprobeError(f"{manifest}: no readable rows left for training (rows with split val/test are held "
                            "out); mark some rows split=train or drop the split column")
    index = {"digest": digest, "total": len(table), "train": train, "holdout": holdout, "skipped": skipped}
    write_json_atomic(index_path, index)
    return _from_index(out, index)


def _identity(item: tuple[int, np.ndarray | None, str | None]) -> tuple[int, np.ndarray | None, str | None]:
    return item


def _from_index(out: Path, index: dict[str, Any]) -> PreparedVolumes:
    def files(rows: list[int]) -> list[Path]:
        return [out / "volumes" / f"{r:06d}.npy" for r in rows]

    return PreparedVolumes(files(index["train"]), files(index["holdout"]), index["skipped"], index["total"])


def _split_rows(table: pd.DataFrame, readable: list[int], holdout: int, seed: int) -> tuple[list[int], list[int]]:
    """Rows whose split is val/test never train; else whole subjects are held out, keeping at least half the
    volumes for training. The subjects are drawn by a permutation from `seed` of their order of first appearance,
    so the hold-out depends on the seed and the manifest's order, never on the identifiers' values (or a salt)."""
    split = table_split(table)
    if split is not None:
        pretrainable = pretraining_rows(split)
        held = [r for r in readable if not pretrainable[r]]
        if held:
            return [r for r in readable if r not in held], held[:holdout]
    appearance = list(dict.fromkeys(table.at[r, "subject_id"] for r in readable))
    subjects = [appearance[i] for i in np.random.default_rng(seed).permutation(len(appearance))]
    held = []
    for subject in subjects:
        rows = [r for r in readable if table.at[r, "subject_id"] == subject]
        if len(held) >= holdout or len(held) + len(rows) > len(readable) // 2:
            break
        held += rows
    return [r for r in readable if r not in held], held


def _digest(table: pd.DataFrame, chain: PreprocessChain) -> str:
    payload = {"rows": table[["path", "subject_id"]].astype(str).values.tolist(), "chain": chain.describe()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as handle:
        np.save(handle, array)
    os.replace(tmp, path)


def write_json_atomic(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str), encoding="utf-8")
    os.replace(tmp, path)
