"""Zero-shot classification: no head is trained; the model's own text tower embeds each class's prompts
(`medprobe.zeroshot`), and an image's class probabilities are the softmax over classes of
`logit_scale · cos(image, class) + logit_bias`, the scale and bias as the model publishes them (CLIP: the learned
temperature, no bias; SigLIP: both). The bias shifts every class alike, so it changes no probability here; it is
kept so the logits are the model's own. Every test row is scored (every row without a split), and the metrics,
intervals, paired comparisons and reports are those of every other protocol.
"""

from __future__ import annotations

import numpy as np

from medprobe.errors import ProbeError
from medprobe.probes.inputs import ProbeInputs
from medprobe.probes.options import ZeroShotOptions
from medprobe.probes.result import ProtocolResult, predictions_frame, score, tested_rows
from medprobe.probes.splits import Fold


def zeroshot_probabilities(X: np.ndarray, embeddings: np.ndarray, logit_scale: float, logit_bias: float
                           ) -> np.ndarray:
    """(n, d) image embeddings against (k, d) unit-norm class embeddings → (n, k) probabilities."""
    X = np.asarray(X, dtype=np.float64)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    logits = logit_scale * (X / np.where(norms > 0, norms, 1.0)) @ np.asarray(embeddings, np.float64).T + logit_bias
    logits -= logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    return weights / weights.sum(axis=1, keepdims=True)


def label_text(value: object) -> str:
    """A class value as a prompt key names it: 1, 1.0 (a label column with gaps is read as floats) and "1" alike."""
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def run_zeroshot(inputs: ProbeInputs, folds: list[Fold], _classes: np.ndarray | None, options: ZeroShotOptions,
                 seed: int, _device: str | None = None) -> ProtocolResult:
    """The runner (`medprobe.probes.registry.Runner`): the training classes and the device have no use here."""
    text = inputs.class_text
    if text is None:
        raise ProbeError("zero-shot needs the class embeddings of a vision-language model's text tower (MedSigLIP, "
                         "SigLIP, any hf: CLIP or SigLIP folder) and the task's prompts")
    by_label = {label_text(label): i for i, label in enumerate(text.classes.tolist())}
    labels = np.unique(inputs.y).tolist()
    unprompted = [label for label in labels if label_text(label) not in by_label]
    if unprompted:
        raise ProbeError(f"no prompts for class(es) {unprompted}: give every class of the task a prompt "
                         "(tasks[].prompts)")
    order = np.unique(inputs.y)  # every class in the rows, not only those of a training side: nothing is trained
    columns = [by_label[label_text(label)] for label in order.tolist()]
    notes = []
    extra = sorted(set(by_label) - {label_text(label) for label in labels})
    if extra:
        notes.append(f"prompts for class(es) {extra} that no row has were left out of the softmax")
    probabilities = zeroshot_probabilities(inputs.X, text.embeddings[columns], text.logit_scale, text.logit_bias)
    test = tested_rows(folds)
    metrics, metric_notes = score(inputs, test, probabilities[test], order, options, seed)
    params: dict[str, str | float | int] = {
        "logit_scale": round(text.logit_scale, 6),
        "logit_bias": round(text.logit_bias, 6),
        "prompts_per_class": max(len(p) for p in text.prompts.values()),
    }
    return ProtocolResult(metrics, predictions_frame(inputs, test, probabilities[test], order), params, 0,
                          len(test), notes + metric_notes)
