"""Score another site's probe head on this site's embeddings, with the protocols' metrics and intervals."""

from __future__ import annotations

import numpy as np

from medprobe.errors import ProbeError
from medprobe.evaluation.plausibility import LabelScale, result_findings
from medprobe.probes import ProtocolResult
from medprobe.probes.inputs import ProbeInputs
from medprobe.probes.options import ProtocolOptions
from medprobe.probes.result import predictions_frame, score
from medprobe.transfer.heads import ProbeHead
from medprobe.transfer.rows import rows_label, scored_rows
from medprobe.transfer.space import FeatureSpace


def evaluate_head(head: ProbeHead, inputs: ProbeInputs, space: FeatureSpace, options: ProtocolOptions,
                  seed: int = 0) -> ProtocolResult:
    """Metrics of `head` on the `scored_rows` of `inputs`, with `options.bootstrap` subject-bootstrap intervals.

    Classes the head and the rows do not share give notes, not errors: rows of a class the head never learnt count
    as errors, a class the head knows and the rows lack leaves the metrics that need it out (as for any test set).
    """
    if head.embed_dim != inputs.X.shape[1]:
        raise ProbeError(f"{head.site}'s head takes {head.embed_dim} features, these embeddings have "
                         f"{inputs.X.shape[1]}")
    rows = scored_rows(inputs)
    if len(rows) == 0:
        raise ProbeError("no test rows to score another site's head on")
    notes = _space_notes(head, space)
    classes = None
    outputs = head.outputs(inputs.X[rows])
    if head.task_type == "classification":
        classes = np.asarray(head.classes)
        notes += _label_map_notes(head, inputs.y[rows])
    metrics, metric_notes = score(inputs, rows, outputs, classes, options, seed)
    name, value = next(iter(head.regularisation.items()))
    params: dict[str, str | float | int] = {"train_site": head.site, f"head_{name}": value,
                                            "head_n_train": head.n_train, "rows": rows_label(inputs)}
    predictions = predictions_frame(inputs, rows, outputs, classes)
    findings = result_findings(metrics, predictions, head.task_type, _training_scale(head))
    return ProtocolResult(metrics=metrics, predictions=predictions, params=params, n_train=head.n_train,
                          n_test=len(rows), notes=[*notes, *metric_notes, *(finding.note for finding in findings)],
                          flags=[finding.flag for finding in findings])


def _training_scale(head: ProbeHead) -> LabelScale | None:
    """The head's training labels as the plausibility checks read them (a head holds their mean and spread)."""
    if head.target_mean is None or head.target_std is None:
        return None
    return LabelScale(head.target_mean, head.target_std)


def _space_notes(head: ProbeHead, space: FeatureSpace) -> list[str]:
    if head.preprocessing == space.preprocessing:
        return []
    return [f"{head.site} preprocessed its images differently (preprocessing digest {head.preprocessing} here "
            f"{space.preprocessing}): part of any difference may come from preprocessing, not from the sites"]


def _label_map_notes(head: ProbeHead, labels: np.ndarray) -> list[str]:
    known = set(head.classes)
    present = np.unique(labels).tolist()
    notes = []
    unknown = [label for label in present if label not in known]
    if unknown:
        count = int(np.isin(labels, unknown).sum())
        notes.append(f"label map: {count} scored row(s) hold class(es) {unknown} that {head.site}'s head was not "
                     "trained on; they count as errors")
    absent = [label for label in head.classes if label not in set(present)]
    if absent:
        notes.append(f"label map: {head.site}'s head knows class(es) {absent} that no scored row holds")
    return notes
