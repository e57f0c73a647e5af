"""How far a frozen encoder and its probe degrade under each artefact: the clean-trained linear head scored on the
corrupted test embeddings.

Per artefact × severity: every headline metric of the head on the corrupted embeddings, with subject-bootstrap
intervals (`medprobe.transfer.evaluate_head`, the way another site's head is scored), its drop relative to the
clean value ((clean − corrupted) / |clean|; for MAE and RMSE (corrupted − clean) / |clean|, so a positive drop is
always a loss), and how far the embeddings moved: the median and 5th percentile over samples of the cosine between
each corrupted embedding and its clean one. Severity 0 (artefact `none`) is the head on the clean embeddings, which
with a train/test split is the linear protocol's own test result. The ranking number is the mean relative drop of
the headline metric (AUROC, else balanced accuracy; MAE for regression) over the artefacts at one severity.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medprobe.errors import ProbeError
from medprobe.metrics.catalogue import ANALYSIS, LOWER_IS_BETTER, ci_high, ci_low
from medprobe.metrics.catalogue import headline as headline_metric
from medprobe.probes.inputs import prepare_inputs
from medprobe.probes.options import ProtocolOptions
from medprobe.transfer import FeatureSpace
from medprobe.transfer.evaluate import evaluate_head
from medprobe.transfer.heads import ProbeHead

CLEAN = "none"
#: `robustness.csv`: one row per artefact × severity × metric (severity 0: the clean row).
COLUMNS = ("artefact", "severity", "metric", "value", "ci_low", "ci_high", "clean", "drop", "cosine_median",
           "cosine_p05", "n_samples")


@dataclass
class RobustnessResult:
    table: pd.DataFrame
    summary: float  # mean relative drop of `headline` over the artefacts at `summary_severity`; NaN when none
    headline: str
    summary_severity: int
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TestEmbeddings:
    """One set of test-split embeddings: sample ids with their vectors (rows in any order)."""

    sample_ids: np.ndarray
    X: np.ndarray

    def aligned(self, sample_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in `sample_ids` these vectors cover, the vectors in that order)."""
        index = {sample: row for row, sample in enumerate(self.sample_ids.tolist())}
        positions = np.array([i for i, s in enumerate(sample_ids.tolist()) if s in index], dtype=np.int64)
        rows = np.array([index[s] for s in sample_ids[positions].tolist()], dtype=np.int64)
        return positions, self.X[rows]


def score_robustness(head: ProbeHead, space: FeatureSpace, clean: TestEmbeddings, y: np.ndarray,
                     subjects: np.ndarray, corrupted: Mapping[tuple[str, int], TestEmbeddings], task_type: str,
                     n_resamples: int, seed: int, summary_severity: int) -> RobustnessResult:
    """`clean`, `y` and `subjects` are the task's test rows (same order); `corrupted` maps (artefact, severity) to
    the re-embedded corrupted images of those rows (a file the corruption made unreadable is simply absent)."""
    metrics = ANALYSIS[task_type]
    options = ProtocolOptions(bootstrap=n_resamples)
    baseline = _scored(head, space, clean.X, y, subjects, task_type, options, seed)
    rows = [_row(CLEAN, 0, metric, baseline, baseline, 1.0, 1.0, len(y)) for metric in metrics if metric in baseline]
    notes: list[str] = []
    failed: list[str] = []
    for (artefact, severity), embeddings in sorted(corrupted.items()):
        positions, X = embeddings.aligned(clean.sample_ids) if len(embeddings.X) else (np.zeros(0, int), None)
        reference = baseline
        if 0 < len(positions) < len(y):
            notes.append(f"{artefact} at severity {severity}: {len(y) - len(positions)} of {len(y)} test samples "
                         "could not be embedded after corruption; it and its clean reference are scored on the rest")
            reference = _scored(head, space, clean.X[positions], y[positions], subjects[positions], task_type,
                                options, seed)
        try:
            if X is None:
                raise ProbeError("no test image could be embedded after this corruption")
            found = _scored(head, space, X, y[positions], subjects[positions], task_type, options, seed)
        except ProbeError as exc:
            notes.append(f"{artefact} at severity {severity}: not scored ({exc})")
            failed.append(f"{artefact}/s{severity}")
            continue
        cosine = _cosines(X, clean.X[positions])
        median, p05 = float(np.median(cosine)), float(np.percentile(cosine, 5))
        rows += [_row(artefact, severity, metric, found, reference, median, p05, len(positions))
                 for metric in metrics if metric in found]
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    headline = headline_metric(task_type, table["metric"])
    at_severity = table[(table["severity"] == summary_severity) & (table["metric"] == headline)]
    summary = float(at_severity["drop"].mean()) if not at_severity.empty else float("nan")
    lost = [f for f in failed if f.endswith(f"/s{summary_severity}")]
    if lost:
        notes.append(f"the summary drop leaves out {', '.join(lost)}, which could not be scored at all: read it "
                     "as a lower bound")
    return RobustnessResult(table, summary, headline, summary_severity, notes)


def _scored(head: ProbeHead, space: FeatureSpace, X: np.ndarray, y: np.ndarray, subjects: np.ndarray,
            task_type: str, options: ProtocolOptions, seed: int) -> dict[str, float]:
    inputs, _ = prepare_inputs(X, y, subjects, np.full(len(y), "test", dtype=object), task_type)
    return evaluate_head(head, inputs, space, options, seed).metrics


def _row(artefact: str, severity: int, metric: str, found: dict[str, float], clean: dict[str, float],
         cosine_median: float, cosine_p05: float, n_samples: int) -> dict[str, object]:
    value, reference = found[metric], clean.get(metric, np.nan)
    change = (value - reference) if metric in LOWER_IS_BETTER else (reference - value)
    drop = change / abs(reference) if reference else np.nan
    return {"artefact": artefact, "severity": severity, "metric": metric, "value": value,
            "ci_low": found.get(ci_low(metric), np.nan), "ci_high": found.get(ci_high(metric), np.nan),
            "clean": reference, "drop": drop, "cosine_median": cosine_median, "cosine_p05": cosine_p05,
            "n_samples": n_samples}


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, np.sum(a * b, axis=1) / norms, np.nan)
