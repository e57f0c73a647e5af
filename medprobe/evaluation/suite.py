"""Run protocols over one embedding table and collect their results (the part `medprobe run` can reuse)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medprobe.errors import MedprobeError, ProbeError
from medprobe.probes import ALL_PROTOCOLS, PROTOCOLS, ProtocolResult, evaluate_protocol


@dataclass
class EvaluationResult:
    """Per protocol, its result or the reason it could not run; `written` lists the files of `write_report`."""

    target: str
    task_type: str
    n_rows: int
    results: dict[str, ProtocolResult] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    written: list[Path] = field(default_factory=list)


def evaluate_embeddings(
    frame: pd.DataFrame,
    X: np.ndarray,
    target: str,
    task_type: str = "classification",
    protocols: Sequence[str] = PROTOCOLS,
    options: Mapping[str, Mapping[str, Any] | None] | None = None,
    seed: int = 0,
    tokens: np.ndarray | None = None,
    device: str | None = None,
) -> EvaluationResult:
    """Evaluate `X` (one row per row of `frame`) for the label column `target` with each protocol.

    `frame` needs `subject_id` and `target`; a `split` column (train/val/test) is used when present, else
    subject-grouped cross-validation. `options[protocol]` are that protocol's options (see `evaluate_protocol`).
    A protocol that cannot run on this data (ProbeError) is recorded in `failures`; the others still run.
    """
    unknown = [p for p in protocols if p not in ALL_PROTOCOLS]
    if unknown or not protocols:
        raise MedprobeError(f"unknown protocol(s) {unknown}; choose from {', '.join(ALL_PROTOCOLS)}")
    missing = [column for column in ("subject_id", target) if column not in frame.columns]
    if missing:
        raise MedprobeError(f"missing column(s) {missing}; found {list(frame.columns)}")
    if len(frame) != len(X):
        raise MedprobeError(f"{len(frame)} table rows but {len(X)} embeddings")
    split = frame["split"].to_numpy() if "split" in frame.columns and frame["split"].notna().any() else None
    outcome = EvaluationResult(target=target, task_type=task_type, n_rows=len(frame))
    for protocol in protocols:
        try:
            outcome.results[protocol] = evaluate_protocol(
                protocol, (options or {}).get(protocol), X, frame[target].to_numpy(), task_type,
                frame["subject_id"].to_numpy(), split, seed, tokens=tokens, device=device,
            )
        except ProbeError as error:
            outcome.failures[protocol] = str(error)
    return outcome


def evaluate_and_write(
    frame: pd.DataFrame, X: np.ndarray, target: str, out_dir: Path, salt: bytes | None = None, **kwargs: Any
) -> EvaluationResult:
    """`evaluate_embeddings` then `write_report` into `out_dir`: what `medprobe run` calls per (model, task)."""
    from medprobe.evaluation.report import write_report

    outcome = evaluate_embeddings(frame, X, target, **kwargs)
    write_report(outcome, frame, out_dir, salt=salt)
    return outcome


def evaluate_file(path: Path, target: str, out_dir: Path, **kwargs: Any) -> EvaluationResult:
    """Read an embedding table (medprobe's Parquet format, or anyone's with sample_id, subject_id, the target and
    an `embedding` list column), evaluate it and write the report. The attentive protocol reads the patch tokens
    the table's metadata names (written beside it by `medprobe embed --tokens`)."""
    from medprobe.embed.table import read_table
    from medprobe.embed.tokens import read_tokens

    frame, X, metadata = read_table(Path(path))
    if X.shape[1] == 0:
        raise MedprobeError(f"{path}: the embedding column is empty")
    if "attentive" in kwargs.get("protocols", ()):
        kwargs["tokens"] = read_tokens(Path(path), metadata)
    return evaluate_and_write(frame, X, target, Path(out_dir), **kwargs)
