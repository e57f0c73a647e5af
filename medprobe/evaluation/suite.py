"""`evaluate_task`: an embedding table through every protocol for one task — the one evaluation function.

A site job (`medprobe run`), `medprobe evaluate`, the Python API and the transfer step's row selection all go
through it and `TaskRows`, so the same table and options give the same numbers whichever front end ran them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medprobe.errors import MedprobeError, ProbeError
from medprobe.evaluation.degenerate import degenerate_embeddings_note
from medprobe.evaluation.label_efficiency import LabelEfficiency, label_efficiency_of
from medprobe.evaluation.near_duplicates import near_duplicates_note
from medprobe.evaluation.options import AnalysisOptions
from medprobe.evaluation.plausibility import LabelScale, result_findings
from medprobe.evaluation.rows import TaskRows
from medprobe.evaluation.subgroups import SubgroupResult, subgroup_metrics
from medprobe.metrics.bootstrap import is_interval_key
from medprobe.metrics.catalogue import ci_high, ci_low
from medprobe.probes import ProtocolResult, evaluate_inputs
from medprobe.probes.inputs import ClassText, ProbeInputs
from medprobe.probes.options import ProtocolOptions, options_for
from medprobe.probes.registry import check_protocols, default_protocols, get_protocol

ProtocolOptionsIn = Mapping[str, "ProtocolOptions | Mapping[str, Any] | None"] | Sequence[str]


@dataclass
class EvaluationResult:
    """Per protocol, its result or the reason it could not run, on `rows` of the table (`frame`: those rows;
    `inputs`: the probe inputs every protocol ran on, None when none could be built). `written` lists the files of
    `write_report`."""

    rows: TaskRows
    frame: pd.DataFrame
    inputs: ProbeInputs | None = None
    options: dict[str, ProtocolOptions] = field(default_factory=dict)
    results: dict[str, ProtocolResult] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    not_applicable: dict[str, str] = field(default_factory=dict)  # protocols this task type has no use for
    subgroups: dict[str, SubgroupResult] = field(default_factory=dict)  # per protocol, with `analysis.subgroups`
    label_efficiency: LabelEfficiency | None = None  # the linear probe's curve, with `analysis.label_efficiency`
    written: list[Path] = field(default_factory=list)

    @property
    def target(self) -> str:
        return self.rows.target

    @property
    def task_type(self) -> str:
        return self.rows.task_type

    @property
    def n_rows(self) -> int:
        return len(self.rows)

    def summary(self) -> pd.DataFrame:
        """One row per protocol and metric: value, 95 % interval (NaN when none), and the protocols that could not
        run with their reason."""
        rows = []
        for protocol, result in self.results.items():
            for name, value in result.metrics.items():
                if is_interval_key(name):
                    continue
                rows.append({"protocol": protocol, "metric": name, "value": value,
                             "ci_low": result.metrics.get(ci_low(name), np.nan),
                             "ci_high": result.metrics.get(ci_high(name), np.nan)})
        rows += [{"protocol": protocol, "metric": "could not run", "value": np.nan, "ci_low": np.nan,
                  "ci_high": np.nan, "reason": reason} for protocol, reason in self.failures.items()]
        return pd.DataFrame(rows)

    def notes(self, protocol: str) -> list[str]:
        """What the rows left out, then what the protocol and the analyses of it noted."""
        result = self.results.get(protocol)
        return [*self.rows.notes, *(result.notes if result else []), *self.analysis_notes(protocol)]

    def analysis_notes(self, protocol: str) -> list[str]:
        """What the subgroups and (linear) the label-efficiency curve of `protocol` noted."""
        subgroups = self.subgroups.get(protocol)
        curve = self.label_efficiency if protocol == "linear" else None
        return [*(subgroups.notes if subgroups else []), *(curve.notes if curve else [])]


def evaluate_task(
    table: pd.DataFrame,
    X: np.ndarray,
    target: str,
    task_type: str = "classification",
    protocols: ProtocolOptionsIn | None = None,
    seed: int = 0,
    tokens: np.ndarray | None = None,
    device: str | None = None,
    analysis: AnalysisOptions | None = None,
    class_text: ClassText | str | None = None,
) -> EvaluationResult:
    """Evaluate `X` (one row per row of `table`) for the label column `target` with each protocol.

    `protocols` names the registered protocols (`medprobe.probes.registry`; None: its defaults, those on the
    pooled embeddings), or maps each to its options (a `medprobe.probes.options` model, a mapping of option values,
    or None for the defaults). `table` needs `subject_id` and `target`; see `TaskRows` for
    which rows are used and how they split. `tokens` (rows matching `table`) feed the attentive protocol, and
    `class_text` the zero-shot protocol: a text tower's class embeddings, the reason there are none (a failure),
    or None (the model has no text tower: the protocol does not apply). A
    protocol that cannot run on this data is recorded in `failures` with the reason; the others still run.
    `analysis` adds each protocol's subgroup metrics (`analysis.subgroups`, columns of `table`) and the linear
    probe's label-efficiency curve (`analysis.label_efficiency`); paired comparisons need two models, so the
    caller that has them runs `medprobe.evaluation.paired`.
    """
    if protocols is None:
        protocols = default_protocols()
    chosen = dict(protocols) if isinstance(protocols, Mapping) else dict.fromkeys(protocols)
    check_protocols(chosen)
    if len(table) != len(X):
        raise MedprobeError(f"{len(table)} table rows but {len(X)} embeddings")
    rows = TaskRows.of(table, target, task_type)
    outcome = EvaluationResult(rows=rows, frame=rows.frame(table))
    degenerate = degenerate_embeddings_note(np.asarray(X)[rows.usable])
    if degenerate:
        rows.notes.append(degenerate)
    elif len(rows):
        duplicates = near_duplicates_note(np.asarray(X)[rows.usable], rows.subjects, rows.split)
        if duplicates:
            rows.notes.append(duplicates)
    input_notes: list[str] = []
    refused = f"no sample has a usable '{target}' label" if len(rows) == 0 else ""  # why no protocol can run
    if not refused:
        try:
            outcome.inputs, input_notes = rows.prepare(X, tokens)
        except ProbeError as error:
            refused = str(error)
    for protocol, given in chosen.items():
        options = options_for(protocol, given)
        entry = get_protocol(protocol)
        reason = entry.not_applicable(task_type)
        if reason is None and entry.text and class_text is None:
            reason = "needs a model with a text tower (a vision-language model such as MedSigLIP or SigLIP)"
        if reason is not None:
            outcome.not_applicable[protocol] = reason
            continue
        outcome.options[protocol] = options
        try:
            if outcome.inputs is None:
                raise ProbeError(refused)
            if entry.tokens and tokens is None:
                raise ProbeError(f"no patch tokens: the {protocol} probe needs an encoder that exposes them "
                                 "(DINOv2, RETFound, timm:..., monai_vit3d) and a table embedded with tokens")
            inputs = outcome.inputs
            if entry.text:
                if not isinstance(class_text, ClassText):
                    raise ProbeError(str(class_text))
                inputs = dataclasses.replace(inputs, class_text=class_text)
            result = evaluate_inputs(protocol, options, inputs, seed, device=device)
            findings = result_findings(result.metrics, result.predictions, task_type, training_scale(outcome.inputs))
            result.notes = [*input_notes, *result.notes, *(finding.note for finding in findings)]
            result.flags = [finding.flag for finding in findings]
            outcome.results[protocol] = result
        except ProbeError as error:
            outcome.failures[protocol] = str(error)
    if analysis is not None:
        _analyse(outcome, analysis, input_notes, seed)
    return outcome


def training_scale(inputs: ProbeInputs) -> LabelScale | None:
    """The regression labels a final model is fitted on, as the plausibility checks read them."""
    if inputs.task_type != "regression":
        return None
    return LabelScale.of(inputs.y[inputs.fit_positions()])


def _analyse(outcome: EvaluationResult, analysis: AnalysisOptions, input_notes: list[str], seed: int) -> None:
    """Subgroups of every protocol whose predictions its metrics score; the linear probe's label-efficiency
    curve."""
    if analysis.subgroups is not None and analysis.subgroups.attributes:
        for protocol, result in outcome.results.items():
            if get_protocol(protocol).scores_predictions and not result.predictions.empty:
                outcome.subgroups[protocol] = subgroup_metrics(result.predictions, outcome.frame, outcome.task_type,
                                                               analysis.subgroups, seed)
    curve = analysis.label_efficiency
    if curve is not None and "linear" in outcome.results and outcome.inputs is not None:
        linear = outcome.options["linear"]
        outcome.label_efficiency = label_efficiency_of(outcome.inputs, input_notes, linear, curve.fractions,
                                                       curve.repeats, seed, n_resamples=linear.bootstrap)


def evaluate_and_write(
    table: pd.DataFrame, X: np.ndarray, target: str, out_dir: Path, salt: bytes | None = None, **kwargs: Any
) -> EvaluationResult:
    """`evaluate_task` then `write_report` into `out_dir`."""
    from medprobe.evaluation.report import write_report

    outcome = evaluate_task(table, X, target, **kwargs)
    write_report(outcome, out_dir, salt=salt)
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
