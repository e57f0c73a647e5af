"""A site's published probe head: the linear protocol's model, fitted once more on all of the site's fit rows.

The protocol's own numbers come from fold models (cross-validation) or from its train + val model; the head a site
publishes is fitted on the rows `medprobe.transfer.rows.fit_rows` names, at the regularisation the protocol chose
(`ProtocolResult.params`: C or alpha, the most frequent choice over folds), with the same torch solvers
(`LinearProbe` with a one-value grid). With a split, it is the very model the protocol tested.

A head holds aggregated statistics only: the standardisation (per-feature mean and scale of the fit rows), the
weights and bias on standardised features, the class values (or the target's mean and spread), and the identity
of the embedding space. No sample, subject, path or date.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from medprobe import __version__
from medprobe.errors import ProbeError
from medprobe.probes import LinearProbe, ProtocolResult
from medprobe.probes.inputs import ProbeInputs
from medprobe.probes.linear_solvers import LogisticSolution, logistic_proba
from medprobe.probes.options import LinearOptions
from medprobe.transfer.rows import fit_rows
from medprobe.transfer.space import FeatureSpace


@dataclass(frozen=True, eq=False)
class ProbeHead:
    """Standardise with (`mean`, `scale`), then `weight` (outputs × d) and `bias` (outputs,): one output for two
    classes (sigmoid of the logit of `classes[1]`) and for regression, one per class otherwise (softmax)."""

    task_type: str
    classes: list[int | str]  # class values in probability-column order; empty for regression
    mean: np.ndarray
    scale: np.ndarray
    weight: np.ndarray
    bias: np.ndarray
    site: str
    model: str
    task: str
    target: str
    fingerprint: str
    preprocessing: str
    regularisation: dict[str, float]  # {"C": …} or {"alpha": …}
    n_train: int
    target_mean: float | None = None
    target_std: float | None = None
    medprobe_version: str = __version__

    @property
    def embed_dim(self) -> int:
        return int(self.mean.shape[0])

    def outputs(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (n, len(classes)) or regression predictions (n,), in float64."""
        Z = torch.as_tensor((np.asarray(X, dtype=np.float64) - self.mean) / self.scale)
        if self.task_type == "regression":
            return (Z @ torch.as_tensor(self.weight[0]) + float(self.bias[0])).numpy()
        solution = LogisticSolution(torch.as_tensor(self.weight.T), torch.as_tensor(self.bias), converged=True)
        return logistic_proba(Z, solution).numpy()


def fit_head(inputs: ProbeInputs, result: ProtocolResult, options: LinearOptions, seed: int, space: FeatureSpace,
             site: str, task: str, target: str) -> ProbeHead:
    """The head of the linear protocol's `result` on `inputs` (the cleaned rows it ran on), with the options the
    protocol ran with."""
    name = "C" if inputs.task_type == "classification" else "alpha"
    if name not in result.params:
        raise ProbeError(f"the linear protocol reported no chosen {name}; no head to publish")
    rows = fit_rows(inputs)
    if len(rows) == 0:
        raise ProbeError("no training rows; no head to publish")
    value = float(result.params[name])
    probe = LinearProbe(task=inputs.task_type, grid=[value], class_weight=options.class_weight,
                        inner_folds=options.inner_folds, seed=seed)
    probe.fit(inputs.X[rows], inputs.y[rows], groups=inputs.subjects[rows])
    y = inputs.y[rows]
    regression = inputs.task_type == "regression"
    return ProbeHead(
        task_type=inputs.task_type,
        classes=[] if regression else probe.classes_.tolist(),
        mean=probe.mean_.astype(np.float64),
        scale=probe.scale_.astype(np.float64),
        weight=np.atleast_2d(probe.coef_).astype(np.float64),
        bias=np.atleast_1d(np.asarray(probe.intercept_, dtype=np.float64)),
        site=site,
        model=space.model,
        task=task,
        target=target,
        fingerprint=space.fingerprint,
        preprocessing=space.preprocessing,
        regularisation={name: value},
        n_train=len(rows),
        target_mean=float(np.mean(y)) if regression else None,
        target_std=float(np.std(y)) if regression else None,
    )
