"""Write an evaluation: `metrics.json`, `predictions/<protocol>.parquet`, `plots/<protocol>_*.png` and, when the
evaluation ran them, `subgroups.csv` and `subgroup_gaps.csv` (a `protocol` column first, then the columns of
`medprobe.evaluation.subgroups`) and `label_efficiency.csv` (`medprobe.evaluation.label_efficiency`) with its plot.

Subject ids in the predictions are medprobe pseudonyms: ids that already look like one (`sub-` + 16 hex digits)
are kept, any other id is replaced by the job's own pseudonym formula (`medprobe.embed.pseudonyms.pseudonym`) with a
salt drawn for this report (or the caller's), so a table from elsewhere does not leak its identifiers into the
outputs.
"""

from __future__ import annotations

import json
import math
import re
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medprobe.embed.pseudonyms import pseudonym
from medprobe.evaluation.suite import EvaluationResult
from medprobe.metrics import plots
from medprobe.metrics.bootstrap import is_interval_key
from medprobe.metrics.catalogue import ci_high, ci_low

PSEUDONYM = re.compile(r"^sub-[0-9a-f]{16}$")
ANALYSIS_FILES = ("subgroups.csv", "subgroup_gaps.csv", "label_efficiency.csv")


def pseudonymise(subjects: pd.Series, salt: bytes | None = None) -> pd.Series:
    """Keep medprobe pseudonyms; hash every other id with `salt` (random when not given)."""
    values = subjects.astype(str)
    if values.map(lambda s: bool(PSEUDONYM.match(s))).all():
        return values
    key = salt if salt is not None else secrets.token_bytes(32)
    return values.map(lambda s: pseudonym(key, "sub", s))


def write_report(outcome: EvaluationResult, out_dir: Path, salt: bytes | None = None) -> None:
    """Write every file of the report into `out_dir`; `outcome.written` lists them."""
    frame = outcome.frame
    out_dir = Path(out_dir)
    (out_dir / "predictions").mkdir(parents=True, exist_ok=True)
    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    if salt is None:
        salt = secrets.token_bytes(32)
    for protocol, result in outcome.results.items():
        if not result.predictions.empty:
            path = out_dir / "predictions" / f"{protocol}.parquet"
            _predictions(result.predictions, frame, salt).to_parquet(path, index=False)
            outcome.written.append(path)
        outcome.written.extend(_plots(protocol, result, out_dir / "plots", outcome.task_type))
    outcome.written.extend(_analysis_files(outcome, out_dir))
    path = out_dir / "metrics.json"
    path.write_text(json.dumps(_summary(outcome), indent=2, allow_nan=False) + "\n")
    outcome.written.insert(0, path)


def protocol_plots(out_dir: Path, protocol: str) -> list[Path]:
    """The plots `write_report` wrote for one protocol."""
    return sorted((Path(out_dir) / "plots").glob(f"{protocol}_*.png"))


def _summary(outcome: EvaluationResult) -> dict[str, Any]:
    protocols = {}
    for protocol, result in outcome.results.items():
        point = {k: v for k, v in result.metrics.items() if not is_interval_key(k)}
        intervals = {
            k: [result.metrics[ci_low(k)], result.metrics[ci_high(k)]]
            for k in point if ci_low(k) in result.metrics
        }
        protocols[protocol] = {
            "metrics": _finite(point), "ci95": intervals, "notes": outcome.notes(protocol), "params": result.params,
            "n_train": result.n_train, "n_test": result.n_test,
        }
    return {
        "target": outcome.target, "task": outcome.task_type, "n_rows": outcome.n_rows,
        "protocols": protocols, "failed": outcome.failures,
    }


def analysis_files(out_dir: Path) -> list[Path]:
    """The analysis tables `write_report` wrote into `out_dir`."""
    return [path for name in ANALYSIS_FILES if (path := Path(out_dir) / name).is_file()]


def _analysis_files(outcome: EvaluationResult, out_dir: Path) -> list[Path]:
    written = []
    for name, kind in (("subgroups.csv", "groups"), ("subgroup_gaps.csv", "gaps")):
        path = out_dir / name
        path.unlink(missing_ok=True)  # a re-run without subgroups must not leave the last run's table behind
        frames = [getattr(result, kind).assign(protocol=protocol) for protocol, result in outcome.subgroups.items()]
        if frames:
            table = pd.concat(frames, ignore_index=True)
            table[["protocol", *table.columns.drop("protocol")]].to_csv(path, index=False)
            written.append(path)
    path, plot = out_dir / "label_efficiency.csv", out_dir / "plots" / "linear_label_efficiency.png"
    path.unlink(missing_ok=True)
    plot.unlink(missing_ok=True)
    curve = outcome.label_efficiency
    if curve is not None and not curve.frame.empty:
        curve.frame.to_csv(path, index=False)
        written.append(path)
        if plots.label_efficiency_plot(plot, curve.frame, f"{outcome.target}: linear probe label efficiency"):
            written.append(plot)
    return written


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    return {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}


def _predictions(predictions: pd.DataFrame, frame: pd.DataFrame, salt: bytes) -> pd.DataFrame:
    out = predictions.copy()
    if "sample_id" in frame.columns:
        out.insert(1, "sample_id", frame["sample_id"].to_numpy()[out["row"].to_numpy()])
    out["subject_id"] = pseudonymise(out["subject_id"], salt).to_numpy()
    for column in ("y_true", "y_pred"):
        if out[column].dtype == object:
            out[column] = out[column].astype(str)
    return out


def _plots(protocol: str, result: Any, folder: Path, task_type: str) -> list[Path]:
    written: list[Path] = []
    frame = result.predictions
    if protocol == "fewshot":
        path = folder / "fewshot_shots.png"
        if plots.shots_plot(path, result.metrics, "few-shot accuracy"):
            written.append(path)
    if task_type != "classification" or frame.empty:
        return written
    columns = [c for c in frame.columns if c.startswith("proba_")]
    classes = np.array([c[len("proba_"):] for c in columns], dtype=object)  # labels as text, like y_true below
    y_true = frame["y_true"].astype(str).to_numpy()
    y_pred = frame["y_pred"].astype(str).to_numpy()
    proba = frame[columns].to_numpy(dtype=np.float64)
    path = folder / f"{protocol}_roc.png"
    if plots.roc_plot(path, y_true, proba, classes, f"{protocol}: ROC"):
        written.append(path)
    path = folder / f"{protocol}_confusion.png"
    plots.confusion_plot(path, y_true, y_pred, classes, f"{protocol}: confusion matrix")
    written.append(path)
    path = folder / f"{protocol}_reliability.png"
    plots.reliability_plot(path, y_true, proba, classes, f"{protocol}: reliability")
    written.append(path)
    return written
