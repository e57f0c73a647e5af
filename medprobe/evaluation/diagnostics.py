"""Embedding diagnostics a site job logs for each model: how many directions the embeddings use, whether they
collapsed, how models relate, and what the site's data look like in two dimensions.

- Effective rank (Roy & Vetterli, "The effective rank: a measure of effective dimensionality", EUSIPCO 2007):
  exp(H(p)) with p_i = σ_i / Σ_j σ_j, the singular values of the centred matrix, H the Shannon entropy (nats).
  It lies in [1, rank]; a constant table (no variance) is given 1, its variance fractions NaN.
- Variance in the first k principal components: Σ_{i≤k} σ_i² / Σ_i σ_i², k in `VARIANCE_TOP`.
- Degenerate: `medprobe.evaluation.degenerate` decides (one rule for the flag and the evaluation note).
- Linear CKA (Kornblith et al., "Similarity of Neural Network Representations Revisited", ICML 2019) on centred
  X, Y with the same rows: ||YᵀX||_F² / (||XᵀX||_F ||YᵀY||_F), equal to HSIC(K, L) / √(HSIC(K, K) HSIC(L, L))
  with linear kernels K = XXᵀ, L = YYᵀ. Computed in feature space or with n × n Gram matrices, whichever is smaller.
- Projection: t-SNE (van der Maaten & Hinton, JMLR 2008) of at most `max_points` rows, one panel per colouring.

Every number is computed in float64 on the centred matrix. Rows with a non-finite value are left out and the
result says so. The figures show the site's own data distribution as points: no image, no identifier; they stay
in the site's run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE
from threadpoolctl import threadpool_limits

from medprobe.evaluation.degenerate import degenerate_embeddings_note
from medprobe.evaluation.options import SubgroupOptions
from medprobe.evaluation.subgroups import group_labels

#: k of the "fraction of variance in the first k principal components" metrics (those with k ≤ min(n, d)).
VARIANCE_TOP = (1, 5, 10)
#: Fewer finite rows than this: no projection (t-SNE needs perplexity ≥ 1 and a few neighbours).
MIN_POINTS = 5
#: t-SNE runs on this many principal components when the embedding has more (and more rows than this).
PCA_DIMS = 50
#: A numeric colouring with more distinct values than this gets a colour bar; otherwise a categorical legend.
MAX_CATEGORIES = 12
#: Most legend entries of a categorical colouring besides "missing": up to 18 categories (one colour each: tab20
#: without its greys); with more, the 18 most frequent and "other" for the rest.
MAX_LEGEND = 19
MISSING, OTHER = "missing", "other"
_GREYS = {MISSING: "#c8c8c8", OTHER: "#707070"}


@dataclass
class EmbeddingDiagnostics:
    """Spectrum statistics of one embedding table (its finite rows)."""

    n_samples: int
    dim: int
    effective_rank: float
    variance_top: dict[int, float]
    degenerate: bool
    n_dropped: int = 0
    notes: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, float]:
        """Flat names for MLflow: diagnostics/effective_rank, diagnostics/variance_top{k}, diagnostics/degenerate."""
        out = {"diagnostics/effective_rank": self.effective_rank}
        out.update({f"diagnostics/variance_top{k}": value for k, value in self.variance_top.items()})
        out["diagnostics/degenerate"] = float(self.degenerate)
        return out


def embedding_diagnostics(X: np.ndarray) -> EmbeddingDiagnostics:
    """Effective rank, variance in the first components and the degenerate flag of `X` (samples × features)."""
    X = _matrix(X, "X")
    finite = np.isfinite(X).all(axis=1)
    dropped = int((~finite).sum())
    notes = [f"diagnostics: {dropped} of {len(X)} row(s) have non-finite embedding values; left out"] if dropped \
        else []
    X = X[finite]
    n, d = X.shape
    degenerate = degenerate_embeddings_note(X)
    if degenerate:
        notes.append(degenerate)
    variances = _spectrum(_centred(X)) if n else np.zeros(0)
    total = variances.sum()
    if n == 0:
        rank = math.nan
    elif total == 0:
        rank = 1.0  # all rows equal: by convention, the bottom of the range
    else:
        singular = np.sqrt(variances)
        p = singular[singular > 0] / singular.sum()
        rank = float(np.exp(-(p * np.log(p)).sum()))
    top = {k: float(variances[:k].sum() / total) if total > 0 else math.nan for k in VARIANCE_TOP if k <= min(n, d)}
    return EmbeddingDiagnostics(n, d, rank, top, degenerate is not None, dropped, notes)


def linear_cka(X: np.ndarray, Y: np.ndarray) -> float:
    """Linear CKA of two embeddings of the same rows, in [0, 1]; NaN when either has no variance. Invariant to
    orthogonal transforms and isotropic scaling of either; not to other linear maps."""
    Xc, Yc = _unit_centred(_matrix(X, "X")), _unit_centred(_matrix(Y, "Y"))
    if len(Xc) != len(Yc):
        raise ValueError(f"linear_cka needs the same rows: X has {len(Xc)}, Y has {len(Yc)}")
    for name, A in (("X", Xc), ("Y", Yc)):
        if not np.isfinite(A).all():
            raise ValueError(f"{name} has non-finite values; drop those rows from both (cka_matrix does)")
    return _cka(Xc, Yc, math.sqrt(_hsic(Xc, Xc)), math.sqrt(_hsic(Yc, Yc)))


def cka_matrix(embeddings: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Linear CKA of every pair of models (model × model, symmetric, 1 on the diagonal). Rows with a non-finite
    value in any model are left out of every cell, so all cells compare the same rows; `attrs["notes"]` says how
    many."""
    names = list(embeddings)
    matrices = {name: _matrix(X, name) for name, X in embeddings.items()}
    sizes = {len(X) for X in matrices.values()}
    if len(sizes) > 1:
        raise ValueError(f"cka_matrix needs the same rows in every model, got "
                         f"{ {name: len(X) for name, X in matrices.items()} }")
    finite = np.ones(sizes.pop() if sizes else 0, dtype=bool)
    for X in matrices.values():
        finite &= np.isfinite(X).all(axis=1)
    centred = {name: _unit_centred(X[finite]) for name, X in matrices.items()}
    norms = {name: math.sqrt(_hsic(A, A)) for name, A in centred.items()}
    table = pd.DataFrame(np.nan, index=pd.Index(names, name="model"), columns=pd.Index(names, name="model"))
    for i, first in enumerate(names):
        for second in names[i:]:
            value = _cka(centred[first], centred[second], norms[first], norms[second])
            table.loc[first, second] = table.loc[second, first] = value
    dropped = int((~finite).sum())
    table.attrs["notes"] = [f"cka: {dropped} row(s) with non-finite values in some model left out"] if dropped else []
    return table


def tsne_coordinates(X: np.ndarray, seed: int = 0, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray] | None:
    """(positions in `X` of the rows drawn, their 2-D t-SNE coordinates), or None with fewer than `MIN_POINTS`
    finite rows or no variance. At most `max_points` finite rows, drawn with `seed`; t-SNE on the first `PCA_DIMS`
    principal components, perplexity min(30, (n - 1) / 3). The same input and seed give the same coordinates.

    t-SNE runs on one OpenMP thread: its Barnes-Hut threads spin on a busy machine (300 points took 52 s with two
    threads on a loaded 2-core machine, 2.4 s with one), and one thread makes the result independent of the core
    count."""
    X = _matrix(X, "X")
    rows = np.flatnonzero(np.isfinite(X).all(axis=1))
    if len(rows) > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(rows, size=max_points, replace=False))
    if len(rows) < MIN_POINTS:
        return None
    points = _centred(X[rows])
    if not points.any():
        return None
    if min(points.shape) > PCA_DIMS:
        points = PCA(n_components=PCA_DIMS, svd_solver="randomized", random_state=seed).fit_transform(points)
    tsne = TSNE(n_components=2, perplexity=min(30.0, (len(rows) - 1) / 3), init="pca", learning_rate="auto",
                random_state=seed)
    with threadpool_limits(limits=1, user_api="openmp"):
        return rows, tsne.fit_transform(points)


def projection_figure(X: np.ndarray, colours: Mapping[str, pd.Series], title: str, seed: int = 0,
                      max_points: int = 2000) -> Figure | None:
    """`tsne_coordinates` drawn once per colouring (`colours`: name → values of each row of `X`, by position),
    or once in grey without colourings; None where `tsne_coordinates` is None. A numeric column with more than
    `MAX_CATEGORIES` distinct values gets a colour bar, any other (a `category` dtype, whatever its values) a legend
    of at most `MAX_LEGEND` entries; missing values are drawn in grey as "missing"."""
    X = _matrix(X, "X")
    for name, values in colours.items():
        if len(values) != len(X):
            raise ValueError(f"colouring {name!r} has {len(values)} values for {len(X)} embedding rows")
    drawn = tsne_coordinates(X, seed, max_points)
    if drawn is None:
        return None
    rows, xy = drawn
    panels: list[tuple[str, pd.Series | None]] = list(colours.items()) or [("", None)]
    columns = min(3, len(panels))
    lines = math.ceil(len(panels) / columns)
    figure = Figure(figsize=(5.2 * columns, 4.4 * lines), layout="constrained")
    size = float(np.clip(3000 / len(rows), 2, 25))
    for number, (name, values) in enumerate(panels):
        axes = figure.add_subplot(lines, columns, number + 1)
        if values is None:
            axes.scatter(xy[:, 0], xy[:, 1], s=size, color="#4c72b0", linewidths=0)
        else:
            shown = values.reset_index(drop=True).iloc[rows].reset_index(drop=True)
            if _is_numeric(values):
                _numeric_panel(figure, axes, xy, shown, name, size)
            else:
                _categorical_panel(axes, xy, shown, size)
        axes.set_title(name)
        axes.set_xticks([])
        axes.set_yticks([])
        axes.set_xlabel("t-SNE 1")
        axes.set_ylabel("t-SNE 2")
    subsample = f"{len(rows)} of {len(X)} samples" if len(rows) < len(X) else f"{len(rows)} samples"
    figure.suptitle(f"{title}\nt-SNE, {subsample} (seed {seed})")
    return figure


def projection_colours(frame: pd.DataFrame, labels: Mapping[str, str],
                       subgroups: SubgroupOptions | None = None) -> dict[str, pd.Series]:
    """The colourings of a job's projection: each label column (`labels`: column → task type; a regression target
    stays numeric, a class label is a category), then each subgroup attribute present in `frame`, binned columns
    cut at their edges as the subgroup metrics cut them."""
    colours: dict[str, pd.Series] = {}
    for column, task_type in labels.items():
        values = frame[column]
        colours[column] = pd.to_numeric(values, errors="coerce") if task_type == "regression" else group_labels(values)
    if subgroups is None:
        return colours
    for attribute in subgroups.attributes:
        if attribute in frame.columns and attribute not in colours:
            colours[attribute] = group_labels(frame[attribute], subgroups.bins.get(attribute))
    return colours


def _matrix(X: np.ndarray, name: str) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (samples × features), got shape {X.shape}")
    return X


def _centred(X: np.ndarray) -> np.ndarray:
    """X minus its column means; constant columns exactly 0 (their mean may differ from the value by rounding)."""
    centred = X - X.mean(axis=0)
    centred[:, np.ptp(X, axis=0) == 0] = 0.0
    return centred


def _unit_centred(X: np.ndarray) -> np.ndarray:
    """Centred and scaled to Frobenius norm 1 (CKA is scale-invariant; this keeps the products near 1)."""
    centred = _centred(X) if len(X) else X
    norm = np.linalg.norm(centred)
    return centred / norm if norm > 0 else centred


def _spectrum(Xc: np.ndarray) -> np.ndarray:
    """Squared singular values of `Xc`, largest first, from the smaller Gram matrix; values within rounding of 0
    (below λ_max · max(n, d) · ε, numpy's matrix_rank tolerance on the squares) are set to 0."""
    n, d = Xc.shape
    gram = Xc.T @ Xc if n >= d else Xc @ Xc.T
    values = np.linalg.eigvalsh(gram)[::-1]
    if not values.size:
        return values
    tolerance = values[0] * max(n, d) * np.finfo(np.float64).eps
    return np.where(values > tolerance, values, 0.0)


def _hsic(A: np.ndarray, B: np.ndarray) -> float:
    """||BᵀA||_F² = ⟨AAᵀ, BBᵀ⟩_F = (n - 1)² · HSIC(AAᵀ, BBᵀ) (Gretton's biased estimate) for centred A, B; in
    feature space or with n × n Gram matrices, whichever costs less."""
    n, a, b = len(A), A.shape[1], B.shape[1]
    if a * b <= n * (a + b):
        return float(np.square(B.T @ A).sum())
    return float(((A @ A.T) * (B @ B.T)).sum())


def _cka(A: np.ndarray, B: np.ndarray, norm_a: float, norm_b: float) -> float:
    if norm_a == 0 or norm_b == 0:
        return math.nan
    return float(min(1.0, _hsic(A, B) / (norm_a * norm_b)))


def _is_numeric(values: pd.Series) -> bool:
    return (pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
            and values.nunique(dropna=True) > MAX_CATEGORIES)


def _numeric_panel(figure: Figure, axes: Axes, xy: np.ndarray, values: pd.Series, name: str, size: float) -> None:
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    known = np.isfinite(numbers)
    if not known.all():
        axes.scatter(xy[~known, 0], xy[~known, 1], s=size, color=_GREYS[MISSING], linewidths=0, label=MISSING)
        axes.legend(fontsize=7, loc="lower right", markerscale=max(1.0, 20 / size))
    image = axes.scatter(xy[known, 0], xy[known, 1], s=size, c=numbers[known], cmap="viridis", linewidths=0)
    figure.colorbar(image, ax=axes, label=name)


def _categorical_panel(axes: Axes, xy: np.ndarray, values: pd.Series, size: float) -> None:
    labels = group_labels(values)
    order = _category_order(labels.dropna())
    if len(order) > MAX_LEGEND - 1:
        counts = labels.value_counts()
        order = [c for c in order if c in set(sorted(order, key=lambda c: -counts[c])[: MAX_LEGEND - 1])]
    masks = {c: (labels == c).fillna(False).to_numpy(bool) for c in order}
    greys = {OTHER: (labels.notna() & ~labels.isin(order)).to_numpy(bool), MISSING: labels.isna().to_numpy(bool)}
    colours = _palette(len(order))
    handles = {}
    for name, mask in greys.items():  # underneath
        if mask.any():
            handles[name] = axes.scatter(xy[mask, 0], xy[mask, 1], s=size, linewidths=0, color=_GREYS[name])
    for number, category in enumerate(order):
        handles[category] = axes.scatter(xy[masks[category], 0], xy[masks[category], 1], s=size, linewidths=0,
                                         color=colours[number])
    shown = [*order, *(name for name in greys if name in handles)]
    axes.legend([handles[c] for c in shown], shown, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0),
                markerscale=max(1.0, 20 / size))


def _palette(count: int) -> list[tuple[float, ...]]:
    """Qualitative colours without tab10's and tab20's greys, which mean "missing" and "other" here."""
    name, greys = ("tab10", {7}) if count <= 9 else ("tab20", {14, 15})
    cmap = colormaps[name]
    return [tuple(cmap(i)) for i in range(cmap.N) if i not in greys][:count]


_LEADING_NUMBER = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def _category_order(labels: pd.Series) -> list[str]:
    """Distinct labels in natural order: by a leading (signed) number first ("2" before "10", "-20--10" before
    "40-60"), then with digit runs compared as numbers ("site-2" before "site-10")."""
    return sorted(set(labels.tolist()), key=_natural_key)


def _natural_key(label: str) -> tuple[float, list[tuple[int, int | str]], str]:
    leading = _LEADING_NUMBER.match(label)
    rest = label[leading.end():] if leading else label
    parts: list[tuple[int, int | str]] = [(0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"(\d+)", rest) if p]
    return float(leading.group(0)) if leading else math.inf, parts, label
