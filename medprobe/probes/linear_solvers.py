"""Torch solvers behind the linear probe: an L2 logistic-regression path by L-BFGS, and ridge in closed form.

Logistic regression minimises scikit-learn's objective (`LogisticRegression(C=C)` with its default lbfgs solver):
`sum_i s_i · CE_i + ||W||² / (2C)` (intercept not penalised; `s_i` the sample weights), divided by `sum_i s_i` as
scikit-learn does. Two classes use one logit (the sigmoid model scikit-learn fits), more use a softmax. The whole
grid is one regularisation path: C from small to large (strong to weak regularisation), each solve starting from
the previous solution, so the cheap, strongly regularised solutions seed the expensive ones.

Ridge needs one eigendecomposition of the Gram matrix (`X^T X`, or `X X^T` when there are fewer rows than
features) per training set; every alpha is then a rescaling of the same eigen-coordinates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from medprobe.probes.threads import threads_for

# Stop when the largest gradient entry of the objective divided by the total sample weight is at most this:
# scikit-learn's lbfgs stopping rule at its default `tol=1e-4` (scipy's `gtol` on the same averaged objective).
TOLERANCE_GRAD = 1e-5
TOLERANCE_CHANGE = 1e-12


@dataclass
class LogisticSolution:
    weight: torch.Tensor  # (d, outputs): outputs = 1 for two classes, else n_classes
    bias: torch.Tensor  # (outputs,)
    converged: bool


def logistic_path(
    X: torch.Tensor,
    codes: torch.Tensor,
    n_classes: int,
    Cs: np.ndarray,
    sample_weight: torch.Tensor | None = None,
    max_iter: int = 1000,
    init: LogisticSolution | None = None,
) -> list[LogisticSolution]:
    """One solution per C in `Cs` (any order), solved in increasing C with warm starts."""
    n, d = X.shape
    outputs = 1 if n_classes == 2 else n_classes
    s = torch.ones(n, dtype=X.dtype, device=X.device) if sample_weight is None else sample_weight.to(X)
    total = float(s.sum())
    s = s / total
    weight = torch.zeros(d, outputs, dtype=X.dtype, device=X.device)
    bias = torch.zeros(outputs, dtype=X.dtype, device=X.device)
    if init is not None:
        weight, bias = init.weight.clone(), init.bias.clone()
    target = codes.to(X) if outputs == 1 else codes
    solutions: dict[int, LogisticSolution] = {}
    for position in np.argsort(Cs, kind="stable"):
        penalty = 1.0 / (2.0 * float(Cs[position]) * total)
        weight, bias, converged = _solve(X, target, s, penalty, weight, bias, max_iter)
        solutions[int(position)] = LogisticSolution(weight, bias, converged)
    return [solutions[position] for position in range(len(Cs))]


def logistic_proba(X: torch.Tensor, solution: LogisticSolution) -> torch.Tensor:
    logits = X @ solution.weight + solution.bias
    if logits.shape[1] == 1:
        positive = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - positive, positive], dim=1)
    return torch.softmax(logits, dim=1)


def _solve(
    X: torch.Tensor, target: torch.Tensor, s: torch.Tensor, penalty: float, weight: torch.Tensor,
    bias: torch.Tensor, max_iter: int,
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """Minimise sum_i s_i CE_i + penalty · ||W||² (s sums to 1) by full-batch L-BFGS from (weight, bias).

    Works on the transposed weights and logits (outputs × d, outputs × n): both products with X are then the
    short-and-wide kind that CPU BLAS runs at memory speed (`X @ W` with W thin is several times slower).
    """
    weight_t, bias = weight.T.clone(memory_format=torch.contiguous_format), bias.clone()
    optimizer = torch.optim.LBFGS(
        [weight_t, bias], lr=1, max_iter=max_iter, max_eval=int(max_iter * 1.25), history_size=10,
        tolerance_grad=TOLERANCE_GRAD, tolerance_change=TOLERANCE_CHANGE, line_search_fn="strong_wolfe",
    )
    binary = weight_t.shape[0] == 1
    onehot_t = None if binary else torch.nn.functional.one_hot(target, weight_t.shape[0]).T.to(X).contiguous()
    X_t = X.T

    @torch.no_grad()
    def closure() -> torch.Tensor:  # loss and its gradient in closed form: no autograd overhead per step
        logits = weight_t @ X_t + bias[:, None]  # (outputs, n)
        if binary:
            z = logits[0]
            loss = (s * (torch.nn.functional.softplus(z) - target * z)).sum()
            residual = (s * (torch.sigmoid(z) - target))[None, :]
        else:
            assert onehot_t is not None  # built whenever there are more than two classes
            log_p = torch.log_softmax(logits, dim=0)
            loss = -(log_p * onehot_t).sum(dim=0) @ s
            residual = (log_p.exp_() - onehot_t) * s
        weight_t.grad = residual @ X + (2.0 * penalty) * weight_t
        bias.grad = residual.sum(dim=1)
        return loss + penalty * (weight_t * weight_t).sum()

    with threads_for(X.numel()):
        optimizer.step(closure)
    converged = int(optimizer.state[weight_t].get("n_iter", 0)) < max_iter
    return weight_t.T, bias, converged


@dataclass
class RidgeEigen:
    """The eigen-decomposition of one (centred) training set's Gram matrix, reusable for every alpha."""

    vectors: torch.Tensor  # (d, r) directions in feature space
    values: torch.Tensor  # (r,) eigenvalues of X^T X along them
    projected: torch.Tensor  # (r,) V^T X^T (y - mean y)
    y_mean: float

    @classmethod
    def fit(cls, X: torch.Tensor, y: torch.Tensor) -> RidgeEigen:
        """X must be centred (standardised on the same rows); works in the smaller of the primal or dual form."""
        y_mean = float(y.mean())
        yc = y - y_mean
        n, d = X.shape
        if n >= d:
            values, vectors = torch.linalg.eigh(X.T @ X)
        else:
            values, left = torch.linalg.eigh(X @ X.T)
            keep = values > values.max().clamp_min(0) * 1e-12
            values, left = values[keep], left[:, keep]
            vectors = (X.T @ left) / values.sqrt()  # unit right singular vectors
        values = values.clamp_min(0)
        return cls(vectors, values, vectors.T @ (X.T @ yc), y_mean)

    def coefficients(self, alphas: torch.Tensor) -> torch.Tensor:
        """(d, len(alphas)): ridge coefficients for every alpha at once."""
        return self.vectors @ (self.projected[:, None] / (self.values[:, None] + alphas[None, :]))
