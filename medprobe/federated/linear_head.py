"""The linear head: multinomial logistic regression on standardised features, trained locally in torch.

Local training is full-batch L-BFGS (strong Wolfe line search) from the global weights, for `iterations` steps,
minimising mean cross-entropy + `l2`/2·‖W‖² + `mu`/2·‖θ − θ_global‖² (the FedProx term; `mu` = 0 is FedAvg).
Full batch because a site's table fits in memory and L-BFGS then needs no learning rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class LinearHead:
    weight: np.ndarray  # (C, d)
    bias: np.ndarray  # (C,)

    @classmethod
    def zeros(cls, n_classes: int, dim: int) -> LinearHead:
        return cls(np.zeros((n_classes, dim), dtype=np.float32), np.zeros(n_classes, dtype=np.float32))

    def predict_proba(self, Z: np.ndarray) -> np.ndarray:
        logits = np.asarray(Z, dtype=np.float64) @ self.weight.T.astype(np.float64) + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)


def train_local(
    start: LinearHead, Z: np.ndarray, codes: np.ndarray, iterations: int = 20, l2: float = 1e-4, mu: float = 0.0
) -> tuple[LinearHead, float]:
    """Return the locally trained head and its final training loss (cross-entropy without penalties)."""
    features = torch.as_tensor(np.asarray(Z, dtype=np.float32))
    targets = torch.as_tensor(np.asarray(codes, dtype=np.int64))
    anchor_w = torch.as_tensor(start.weight, dtype=torch.float32)
    anchor_b = torch.as_tensor(start.bias, dtype=torch.float32)
    weight = anchor_w.clone().requires_grad_(True)
    bias = anchor_b.clone().requires_grad_(True)
    optimiser = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=iterations, history_size=10,
                                  line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = _objective(features, targets, weight, bias, anchor_w, anchor_b, l2, mu)
        loss.backward()
        return loss

    if len(features):
        optimiser.step(closure)
    with torch.no_grad():
        data_loss = torch.nn.functional.cross_entropy(features @ weight.T + bias, targets) if len(features) else 0.0
    head = LinearHead(weight.detach().numpy().copy(), bias.detach().numpy().copy())
    return head, float(data_loss)


def _objective(features, targets, weight, bias, anchor_w, anchor_b, l2: float, mu: float) -> torch.Tensor:
    loss = torch.nn.functional.cross_entropy(features @ weight.T + bias, targets)
    loss = loss + 0.5 * l2 * weight.square().sum()
    if mu:
        loss = loss + 0.5 * mu * ((weight - anchor_w).square().sum() + (bias - anchor_b).square().sum())
    return loss
