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
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np
import torch
from sklearn.utils import Tags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, check_X_y, validate_data
from timm.optim import Lars
from torch import nn

from medprobe.errors import ProbeError
from medprobe.options import field_default
from medprobe.probes.crossfit import cross_fit, pooled_result
from medprobe.probes.estimator import (
    ProbeEstimator,
    ProbeValueError,
    check_positive_int,
    classification_only,
    from_numpy,
)
from medprobe.probes.inputs import ProbeInputs
from medprobe.probes.options import AttentiveOptions
from medprobe.probes.result import ProtocolResult
from medprobe.probes.splits import Fold
from medprobe.probes.threads import threads_for

#: Per optimiser: learning rate (for LARS the base lr, scaled by batch/256) and weight decay when not given.
OPTIMIZER_DEFAULTS: dict[str, tuple[float, float]] = {"adamw": (1e-3, 1e-4), "lars": (0.1, 0.0)}
#: LARS warm-up, as a fraction of the epochs (MAE and the paper: 10 of 90).
LARS_WARMUP = 0.1
_NO_Y = object()  # `_validate_tokens` without a target (predicting); `y=None` is a missing target


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
    """A scikit-learn estimator on tokens `X` (n, T, D): efficient-probing head trained with AdamW or LARS
    (`lr`, `weight_decay` None: the optimiser's defaults, `OPTIMIZER_DEFAULTS`).

    2-D `X` (n, D) is read as one token per row (T = 1: the attention is then trivial and the head is a linear
    map, BatchNorm and a linear layer), which is how scikit-learn's estimator checks and pooled embeddings feed it.
    Fitting needs two rows (BatchNorm trains on batches of two or more).

    Learned attributes: `head_` (the torch module, in eval mode), `classes_` (classification) or `y_mean_`,
    `y_scale_` (regression), `queries_` (the number of queries used), `loss_curve_` (mean loss per epoch),
    `n_features_in_` (the token width D).
    """

    def __init__(
        self,
        task: str = "classification",
        queries: int = field_default(AttentiveOptions, "queries"),
        epochs: int = field_default(AttentiveOptions, "epochs"),
        optimizer: str = field_default(AttentiveOptions, "optimizer"),
        lr: float | None = field_default(AttentiveOptions, "lr"),
        weight_decay: float | None = field_default(AttentiveOptions, "weight_decay"),
        batch_size: int = field_default(AttentiveOptions, "batch_size"),
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
        """Train the head; the initialisation and batch order come from `seed` alone, and torch's global random
        state is the same afterwards as before (a caller's own seeding is left alone)."""
        on_gpu = torch.device(self.device or "cpu").type == "cuda"
        with torch.random.fork_rng(devices=None if on_gpu else []):
            torch.manual_seed(int(self.seed))
            return self._fit(X, y)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> AttentiveProbe:
        classification = self._check_task()
        if self.optimizer not in OPTIMIZER_DEFAULTS:
            raise ProbeValueError(
                f"option 'optimizer' must be one of {sorted(OPTIMIZER_DEFAULTS)}, got {self.optimizer!r}"
            )
        queries = check_positive_int(self.queries, "queries")
        epochs = check_positive_int(self.epochs, "epochs")
        batch_size = check_positive_int(self.batch_size, "batch_size", minimum=2)
        tokens, y = self._validate_tokens(X, y, reset=True)
        self.device_ = torch.device(self.device or "cpu")
        generator = torch.Generator().manual_seed(int(self.seed))
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
        if classification:
            check_classification_targets(y)
            self.classes_, codes = np.unique(y, return_inverse=True)
            target = torch.from_numpy(codes.astype(np.int64))
            n_outputs, loss_fn = len(self.classes_), nn.functional.cross_entropy
        else:
            values = y.astype(np.float64)
            self.y_mean_, self.y_scale_ = float(values.mean()), float(values.std()) or 1.0
            target = torch.from_numpy(((values - self.y_mean_) / self.y_scale_).astype(np.float32))
            n_outputs, loss_fn = 1, _squared_error
        dim = tokens.shape[2]
        self.queries_ = usable_queries(dim, queries)
        self.head_ = attentive_head(dim, n_outputs, self.queries_).to(self.device_)
        steps_per_epoch = -(-len(y) // batch_size)
        optimizer, schedule = self._optimizer(epochs * steps_per_epoch)
        data = from_numpy(tokens)
        self.loss_curve_ = []
        self.head_.train()
        with threads_for(tokens.size):
            for _ in range(epochs):
                order = torch.randperm(len(y), generator=generator)
                total = 0.0
                for start in range(0, len(y), batch_size):
                    batch = order[start : start + batch_size]
                    if len(batch) < 2:  # BatchNorm needs two rows in training mode
                        continue
                    out = self.head_(data[batch].to(self.device_).float())
                    loss = loss_fn(out, target[batch].to(self.device_))
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    schedule.step()
                    total += float(loss.detach()) * len(batch)
                self.loss_curve_.append(total / len(y))
        self.head_.eval()
        return self

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # patch tokens (n, T, D); 2-D rows (n, D) are one token each
        return tags

    def _validate_tokens(self, X: Any, y: Any = _NO_Y, reset: bool = False) -> tuple[np.ndarray, Any]:
        """Tokens (n, T, D), float16 kept (as stored) and anything else as float32; 2-D rows (n, D) become
        (n, 1, D). `n_features_in_` is D. Fitting (with `y`) needs two rows: BatchNorm trains on pairs."""
        fitting = y is not _NO_Y
        options: dict[str, Any] = {"dtype": [np.float32, np.float16], "ensure_min_samples": 2 if fitting else 0}
        if fitting:
            options["y_numeric"] = self.task == "regression"
        if (X.ndim if hasattr(X, "ndim") else np.asarray(X).ndim) != 3:
            if fitting:
                X, y = validate_data(self, X, y, reset=reset, **options)
            else:
                X = validate_data(self, X, reset=reset, **options)
            return X[:, None, :], y
        if fitting:
            tokens, y = check_X_y(X, y, allow_nd=True, estimator=self, **options)
        else:
            tokens = check_array(X, allow_nd=True, estimator=self, **options)
        if tokens.shape[1] == 0 or tokens.shape[2] == 0:
            raise ProbeValueError(f"tokens must have shape (samples, tokens, features), got {tokens.shape}")
        if reset:
            self.n_features_in_ = tokens.shape[2]
            if hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
        elif tokens.shape[2] != self.n_features_in_:
            raise ProbeValueError(f"X has {tokens.shape[2]} features, but {type(self).__name__} is expecting "
                                  f"{self.n_features_in_} features as input.")
        return tokens, y

    def _optimizer(self, steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
        default_lr, default_decay = OPTIMIZER_DEFAULTS[self.optimizer]
        lr = float(self.lr if self.lr is not None else default_lr)
        decay = float(self.weight_decay if self.weight_decay is not None else default_decay)
        if self.optimizer == "adamw":
            optimizer: torch.optim.Optimizer = torch.optim.AdamW(self.head_.parameters(), lr=lr, weight_decay=decay)
            return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        optimizer = Lars(self.head_.parameters(), lr=lr * int(self.batch_size) / 256, momentum=0.9,
                         weight_decay=decay)
        warmup = max(1, round(LARS_WARMUP * steps))
        return optimizer, torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: (step + 1) / warmup if step < warmup
            else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))
        )

    def _outputs(self, X: np.ndarray) -> torch.Tensor:
        check_is_fitted(self, "head_")
        tokens = from_numpy(self._validate_tokens(X)[0])
        with torch.no_grad(), threads_for(tokens.numel()):
            parts = [self.head_(tokens[s : s + 1024].to(self.device_).float()).cpu()
                     for s in range(0, len(tokens), 1024)]
        return torch.cat(parts) if parts else torch.empty(0, 1)

    @classification_only
    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return torch.softmax(self._outputs(X).double(), dim=1).numpy()

    def predict(self, X: np.ndarray) -> np.ndarray:
        check_is_fitted(self, "head_")
        if self.task == "classification":
            return self.classes_[self.predict_proba(X).argmax(axis=1)]
        return self._outputs(X)[:, 0].double().numpy() * self.y_scale_ + self.y_mean_


def _squared_error(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The regression loss: mean squared error of the head's single output."""
    return nn.functional.mse_loss(out[:, 0], target)


def run_attentive(
    inputs: ProbeInputs, folds: list[Fold], classes: np.ndarray | None, options: AttentiveOptions, seed: int,
    device: str | None = None,
) -> ProtocolResult:
    """Train one head per fold on the training (+ val) rows' tokens; score the pooled test predictions. `options`
    validated by its model."""
    if inputs.tokens is None:
        raise ProbeError(
            "the attentive protocol needs patch tokens (evaluate_protocol(..., tokens=array of shape (n, T, D))); "
            "the embedding table holds pooled embeddings only"
        )
    task = inputs.task_type
    tokens = inputs.tokens
    notes: list[str] = []
    dim = tokens.shape[2]
    wanted = options.queries
    if usable_queries(dim, wanted) != wanted:
        notes.append(f"{wanted} queries do not divide the token width {dim}; used {usable_queries(dim, wanted)}")

    def fit_predict(number: int, fold: Fold) -> tuple[dict[Hashable, np.ndarray], np.ndarray | None]:
        probe = AttentiveProbe(
            task=task, queries=wanted, epochs=options.epochs, optimizer=options.optimizer, lr=options.lr,
            weight_decay=options.weight_decay, batch_size=options.batch_size,
            seed=seed * 1000 + number, device=device,
        ).fit(tokens[fold.fit_rows], inputs.y[fold.fit_rows])
        if task == "classification":
            return {None: probe.predict_proba(tokens[fold.test])}, probe.classes_
        return {None: probe.predict(tokens[fold.test])}, None

    outputs = cross_fit(inputs, folds, classes, fit_predict)[None]
    default_lr, default_decay = OPTIMIZER_DEFAULTS[options.optimizer]  # a name its options model allows
    params: dict[str, str | float | int] = {
        "queries": usable_queries(dim, wanted), "epochs": options.epochs, "optimizer": options.optimizer,
        "lr": float(options.lr if options.lr is not None else default_lr),
        "weight_decay": float(options.weight_decay if options.weight_decay is not None else default_decay),
        "batch_size": options.batch_size,
    }
    return pooled_result(inputs, folds, outputs, classes, options, seed, params, notes)
