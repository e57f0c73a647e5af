"""Attentive probe on patch tokens: efficient probing (Psomas et al., "Attention, Please! Revisiting Attentive
Probing for Masked Image Modeling", arXiv 2506.10178; `billpsomas/efficient-probing`, `poolings/ep.py`).

Head = `EfficientProbing` → `BatchNorm1d(affine=False, eps=1e-6)` → `Linear`, as in the paper's `probe_heads.py`:
M learnable queries (default 32, init N(0, 0.02²)) attend to the raw patch tokens — no query or key projection,
a single head, scale D^-0.5, softmax over the patches per query. The only projection is the value map
`Linear(D, D / d_out, bias=False)`, whose output is cut into M chunks of width D / (d_out · M); query j reads only
its own chunk, and the M outputs are concatenated (not averaged) into a D / d_out vector. D must be divisible by
M · d_out; otherwise the largest M that divides it is used (with a note).

Training is plain supervised learning of the head on the training rows (the encoder is frozen; its tokens come
precomputed). Two optimisers:
- `lars`, the paper's (and MAE's linear-probing) recipe: LARS (timm's) with momentum 0.9, no weight decay,
  lr = base lr 0.1 × batch/256, linear warm-up over the first 10 % of the epochs (10 of the paper's 90), then a
  half-cosine to zero. Made for ImageNet-size data (batch 4096);
- `adamw` (default): AdamW, lr 1e-3, weight decay 1e-4, cosine schedule, which converges in a few dozen epochs on
  the few hundred to few thousand rows a site has.
Regression fits a standardised target with the squared error.

Where tokens come from: `medprobe embed` / `medprobe run` keep the patch tokens of encoders that expose them
(`Encoder.encode_with_tokens`) in a float16 array beside the embedding table (medprobe/embed/tokens.py), rows
matching the table; `evaluate_protocol(..., tokens=...)` takes them, shape (n, T, D). They stay float16 until a
mini-batch is cast for the head, so a site's tokens need not fit in memory twice.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted, column_or_1d
from timm.optim import Lars
from torch import nn

from medprobe.errors import ProbeError
from medprobe.probes.estimator import ProbeEstimator
from medprobe.probes.inputs import ProbeInputs
from medprobe.probes.options import positive_int
from medprobe.probes.result import ProtocolResult, align_proba, fit_size, predictions_frame, score, tested_rows
from medprobe.probes.splits import Fold

DEFAULTS: dict[str, Any] = {
    "queries": 32, "epochs": 60, "optimizer": "adamw", "lr": None, "weight_decay": None, "batch_size": 256,
}
#: Per optimiser: learning rate (for LARS the base lr, scaled by batch/256) and weight decay when not given.
OPTIMIZER_DEFAULTS: dict[str, tuple[float, float]] = {"adamw": (1e-3, 1e-4), "lars": (0.1, 0.0)}
#: LARS warm-up, as a fraction of the epochs (MAE and the paper: 10 of 90).
LARS_WARMUP = 0.1


class EfficientProbing(nn.Module):
    """Multi-query cross-attention pooling without query/key projections (see the module docstring)."""

    def __init__(self, dim: int, num_queries: int = 32, d_out: int = 1) -> None:
        super().__init__()
        if dim % (num_queries * d_out):
            raise ProbeError(f"token width {dim} is not divisible by queries·d_out = {num_queries * d_out}")
        self.num_queries, self.d_out = num_queries, d_out
        self.queries = nn.Parameter(torch.randn(1, num_queries, dim) * 0.02)
        self.v = nn.Linear(dim, dim // d_out, bias=False)
        self.scale = dim**-0.5

    def attention(self, x: torch.Tensor) -> torch.Tensor:
        """(B, M, N): each query's softmax weights over the N tokens."""
        return torch.softmax((self.queries * self.scale) @ x.transpose(1, 2), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, _ = x.shape
        values = self.v(x).reshape(B, N, self.num_queries, -1)  # (B, N, M, c): query j's chunk is values[..., j, :]
        pooled = torch.einsum("bmn,bnmc->bmc", self.attention(x), values)
        return pooled.reshape(B, -1)


def attentive_head(dim: int, n_outputs: int, num_queries: int = 32, d_out: int = 1) -> nn.Sequential:
    return nn.Sequential(
        EfficientProbing(dim, num_queries, d_out),
        nn.BatchNorm1d(dim // d_out, affine=False, eps=1e-6),
        nn.Linear(dim // d_out, n_outputs),
    )


def usable_queries(dim: int, wanted: int) -> int:
    """The largest number of queries, at most `wanted`, that divides the token width."""
    return max(m for m in range(1, min(wanted, dim) + 1) if dim % m == 0)


class AttentiveProbe(ProbeEstimator):
    """A scikit-learn-shaped estimator on tokens `X` (n, T, D): efficient-probing head trained with AdamW or LARS
    (`lr`, `weight_decay` None: the optimiser's defaults, `OPTIMIZER_DEFAULTS`).

    Learned attributes: `head_` (the torch module, in eval mode), `classes_` (classification) or `y_mean_`,
    `y_scale_` (regression), `queries_` (the number of queries used), `loss_curve_` (mean loss per epoch).
    """

    def __init__(
        self,
        task: str = "classification",
        queries: int = 32,
        epochs: int = 60,
        optimizer: str = "adamw",
        lr: float | None = None,
        weight_decay: float | None = None,
        batch_size: int = 256,
        seed: int = 0,
        device: str | None = None,
    ) -> None:
        self.task = task
        self.queries = queries
        self.epochs = epochs
        self.optimizer = optimizer
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.seed = seed
        self.device = device

    def fit(self, X: np.ndarray, y: np.ndarray) -> AttentiveProbe:
        tokens = _check_tokens(X)
        y = column_or_1d(y)
        if len(y) != len(tokens):
            raise ProbeError(f"tokens have {len(tokens)} rows but y has {len(y)}")
        if len(y) < 2:
            raise ProbeError("the attentive probe needs at least two training rows")
        self.device_ = torch.device(self.device or "cpu")
        generator = torch.Generator().manual_seed(int(self.seed))
        torch.manual_seed(int(self.seed))
        if self.task == "classification":
            self.classes_, codes = np.unique(y, return_inverse=True)
            target = torch.from_numpy(codes.astype(np.int64))
            n_outputs, loss_fn = len(self.classes_), nn.functional.cross_entropy
        elif self.task == "regression":
            values = y.astype(np.float64)
            self.y_mean_, self.y_scale_ = float(values.mean()), float(values.std()) or 1.0
            target = torch.from_numpy(((values - self.y_mean_) / self.y_scale_).astype(np.float32))
            n_outputs = 1

            def loss_fn(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
                return nn.functional.mse_loss(out[:, 0], t)
        else:
            raise ProbeError(f"task must be 'classification' or 'regression', got {self.task!r}")
        dim = tokens.shape[2]
        self.queries_ = usable_queries(dim, positive_int(self.queries, "queries"))
        self.head_ = attentive_head(dim, n_outputs, self.queries_).to(self.device_)
        epochs = positive_int(self.epochs, "epochs")
        steps_per_epoch = -(-len(y) // positive_int(self.batch_size, "batch_size"))
        optimizer, schedule = self._optimizer(epochs * steps_per_epoch)
        data = torch.from_numpy(tokens)
        self.loss_curve_ = []
        self.head_.train()
        for _ in range(epochs):
            order = torch.randperm(len(y), generator=generator)
            total = 0.0
            for start in range(0, len(y), self.batch_size):
                batch = order[start : start + self.batch_size]
                if len(batch) < 2:  # BatchNorm needs two rows in training mode
                    continue
                loss = loss_fn(self.head_(data[batch].to(self.device_).float()), target[batch].to(self.device_))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                schedule.step()
                total += float(loss.detach()) * len(batch)
            self.loss_curve_.append(total / len(y))
        self.head_.eval()
        self.n_features_in_ = dim
        return self

    def _optimizer(self, steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        if self.optimizer not in OPTIMIZER_DEFAULTS:
            raise ProbeError(f"option 'optimizer' must be one of {sorted(OPTIMIZER_DEFAULTS)}, got {self.optimizer!r}")
        default_lr, default_decay = OPTIMIZER_DEFAULTS[self.optimizer]
        lr = float(self.lr if self.lr is not None else default_lr)
        decay = float(self.weight_decay if self.weight_decay is not None else default_decay)
        if self.optimizer == "adamw":
            optimizer = torch.optim.AdamW(self.head_.parameters(), lr=lr, weight_decay=decay)
            return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        optimizer = Lars(self.head_.parameters(), lr=lr * self.batch_size / 256, momentum=0.9, weight_decay=decay)
        warmup = max(1, round(LARS_WARMUP * steps))
        return optimizer, torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: (step + 1) / warmup if step < warmup
            else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
        )

    def _outputs(self, X: np.ndarray) -> torch.Tensor:
        check_is_fitted(self, "head_")
        tokens = torch.from_numpy(_check_tokens(X))
        with torch.no_grad():
            parts = [self.head_(tokens[s : s + 1024].to(self.device_).float()).cpu()
                     for s in range(0, len(tokens), 1024)]
        return torch.cat(parts) if parts else torch.empty(0, 1)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        if self.task != "classification":
            raise AttributeError("predict_proba is only available for classification")
        return torch.softmax(self._outputs(X).double(), dim=1).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        if self.task == "classification":
            return self.classes_[self.predict_proba(X).argmax(axis=1)]
        return self._outputs(X)[:, 0].double().numpy() * self.y_scale_ + self.y_mean_



def run_attentive(
    inputs: ProbeInputs, folds: list[Fold], classes: np.ndarray | None, options: dict, seed: int
) -> ProtocolResult:
    """Train one head per fold on the training (+ val) rows' tokens; score the pooled test predictions."""
    if inputs.tokens is None:
        raise ProbeError(
            "the attentive protocol needs patch tokens (evaluate_protocol(..., tokens=array of shape (n, T, D))); "
            "the embedding table holds pooled embeddings only"
        )
    task = inputs.task_type
    test = tested_rows(folds)
    outputs = np.zeros((len(inputs.y), len(classes)) if task == "classification" else len(inputs.y))
    notes: list[str] = []
    dim = inputs.tokens.shape[2]
    wanted = positive_int(options["queries"], "queries")
    if usable_queries(dim, wanted) != wanted:
        notes.append(f"{wanted} queries do not divide the token width {dim}; used {usable_queries(dim, wanted)}")
    for number, fold in enumerate(folds):
        fit = fold.fit_rows
        probe = AttentiveProbe(
            task=task, queries=wanted, epochs=options["epochs"], optimizer=options["optimizer"], lr=options["lr"],
            weight_decay=options["weight_decay"], batch_size=options["batch_size"],
            seed=seed * 1000 + number, device=options.get("device"),
        ).fit(inputs.tokens[fit], inputs.y[fit])
        if task == "classification":
            outputs[fold.test] = align_proba(probe.predict_proba(inputs.tokens[fold.test]), probe.classes_, classes)
        else:
            outputs[fold.test] = probe.predict(inputs.tokens[fold.test])
    metrics, metric_notes = score(inputs, test, outputs[test], classes, options, seed)
    default_lr, default_decay = OPTIMIZER_DEFAULTS.get(options["optimizer"], (None, None))
    params: dict[str, str | float | int] = {
        "queries": usable_queries(dim, wanted), "epochs": options["epochs"], "optimizer": options["optimizer"],
        "lr": float(options["lr"] if options["lr"] is not None else default_lr),
        "weight_decay": float(options["weight_decay"] if options["weight_decay"] is not None else default_decay),
        "batch_size": options["batch_size"],
    }
    if inputs.split is None:
        params["folds"] = len(folds)
    return ProtocolResult(
        metrics=metrics,
        predictions=predictions_frame(inputs, test, outputs[test], classes),
        params=params,
        n_train=fit_size(folds),
        n_test=len(test),
        notes=notes + metric_notes,
    )


def _check_tokens(X: Any) -> np.ndarray:
    """float16 tokens (as stored) stay float16; anything else becomes float32."""
    tokens = np.asarray(X)
    if tokens.dtype not in (np.float16, np.float32):
        tokens = tokens.astype(np.float32)
    if tokens.ndim != 3 or tokens.shape[1] == 0 or tokens.shape[2] == 0:
        raise ProbeError(f"tokens must have shape (samples, tokens, features), got {tokens.shape}")
    if not np.isfinite(tokens).all():
        raise ProbeError("tokens contain NaN or infinite values")
    return np.ascontiguousarray(tokens)
