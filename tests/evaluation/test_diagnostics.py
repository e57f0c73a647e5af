"""Embedding diagnostics: effective rank and variance fractions against direct SVD and scikit-learn's PCA, linear
CKA against the n × n HSIC formulation and its invariances, and the t-SNE figure's panels, legends and seeding."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from sklearn.decomposition import PCA

from medprobe.evaluation.degenerate import degenerate_embeddings_note
from medprobe.evaluation.diagnostics import (
    MAX_LEGEND,
    cka_matrix,
    embedding_diagnostics,
    linear_cka,
    projection_colours,
    projection_figure,
    tsne_coordinates,
)
from medprobe.evaluation.options import SubgroupOptions


def _with_spectrum(rng: np.random.Generator, n: int, d: int, singular: np.ndarray) -> np.ndarray:
    """An n × d matrix whose centred version has exactly the singular values `singular`, plus a row offset."""
    U = rng.normal(size=(n, len(singular)))
    U, _ = np.linalg.qr(U - U.mean(axis=0))  # columns orthogonal to the ones vector: centring leaves them alone
    V, _ = np.linalg.qr(rng.normal(size=(d, len(singular))))
    return (U * singular) @ V.T + rng.normal(size=d) * 5


def _effective_rank_by_svd(X: np.ndarray) -> float:
    s = np.linalg.svd(X - X.mean(axis=0), compute_uv=False)
    p = s[s > s[0] * 1e-12] / s.sum()
    return float(np.exp(-(p * np.log(p)).sum()))


@pytest.mark.parametrize(("n", "d", "k"), [(200, 32, 7), (12, 64, 5), (50, 50, 1)])
def test_k_equal_singular_values_give_effective_rank_k(n: int, d: int, k: int) -> None:
    X = _with_spectrum(np.random.default_rng(k), n, d, np.full(k, 3.0))
    result = embedding_diagnostics(X)
    assert result.effective_rank == pytest.approx(k, rel=1e-9)
    assert (result.n_samples, result.dim, result.n_dropped, result.notes) == (n, d, 0, [])


@pytest.mark.parametrize(("n", "d"), [(300, 40), (15, 80)])
def test_effective_rank_and_variance_fractions_match_svd_and_pca(n: int, d: int) -> None:
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, d)) * np.geomspace(10, 0.01, d) + 100  # decaying spectrum, far from the origin
    result = embedding_diagnostics(X.astype(np.float32))

    assert result.effective_rank == pytest.approx(_effective_rank_by_svd(X.astype(np.float32).astype(np.float64)),
                                                  rel=1e-6)
    assert 1 <= result.effective_rank <= min(n, d)
    cumulative = np.cumsum(PCA().fit(X.astype(np.float32).astype(np.float64)).explained_variance_ratio_)
    expected_ks = [k for k in (1, 5, 10) if k <= min(n, d)]
    assert list(result.variance_top) == expected_ks
    for k in expected_ks:
        assert result.variance_top[k] == pytest.approx(cumulative[k - 1], rel=1e-9)
    assert result.metrics() == {"diagnostics/effective_rank": result.effective_rank,
                                **{f"diagnostics/variance_top{k}": result.variance_top[k] for k in expected_ks},
                                "diagnostics/degenerate": 0.0}


def test_nan_rows_are_dropped_and_noted() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 6))
    holed = X.copy()
    holed[[3, 17], 2] = np.nan
    holed[25, 0] = np.inf
    result = embedding_diagnostics(holed)
    clean = embedding_diagnostics(np.delete(X, [3, 17, 25], axis=0))
    assert (result.n_samples, result.n_dropped) == (37, 3)
    assert result.effective_rank == pytest.approx(clean.effective_rank, rel=1e-12)
    assert result.variance_top == pytest.approx(clean.variance_top, rel=1e-12)
    assert result.notes == ["diagnostics: 3 of 40 row(s) have non-finite embedding values; left out"]


def test_constant_and_collapsed_embeddings_are_flagged_by_the_shared_rule() -> None:
    constant = np.tile([0.1, 0.7, -3.3], (9, 1))  # the column means differ from the values by rounding
    result = embedding_diagnostics(constant)
    assert result.effective_rank == 1.0 and result.degenerate
    assert all(np.isnan(v) for v in result.variance_top.values()) and list(result.variance_top) == [1]
    assert result.metrics()["diagnostics/degenerate"] == 1.0
    assert result.notes == [degenerate_embeddings_note(constant)]

    rng = np.random.default_rng(0)
    collapsed = rng.normal(size=64) + 1e-4 * rng.normal(size=(40, 64))  # a random-init ViT's CLS token
    flagged = embedding_diagnostics(collapsed)
    assert flagged.degenerate and degenerate_embeddings_note(collapsed) is not None
    assert flagged.effective_rank > 10  # the spread is tiny but not low-rank: the flag, not the rank, says so
    assert not embedding_diagnostics(rng.normal(size=(40, 64))).degenerate

    assert embedding_diagnostics(np.ones((1, 4))).effective_rank == 1.0
    empty = embedding_diagnostics(np.full((3, 4), np.nan))
    assert (empty.n_samples, empty.variance_top, empty.degenerate) == (0, {}, False)
    assert np.isnan(empty.effective_rank)
    with pytest.raises(ValueError, match="2-D"):
        embedding_diagnostics(np.ones(5))


def _cka_by_hsic(X: np.ndarray, Y: np.ndarray) -> float:
    """Gretton's biased HSIC with the centring matrix H = I - 11ᵀ/n on linear kernels (Kornblith et al., eq. 1-3)."""
    n = len(X)
    H = np.eye(n) - np.ones((n, n)) / n
    K, L = X @ X.T, Y @ Y.T

    def hsic(A: np.ndarray, B: np.ndarray) -> float:
        return float(np.trace(A @ H @ B @ H)) / (n - 1) ** 2

    return hsic(K, L) / np.sqrt(hsic(K, K) * hsic(L, L))


@pytest.mark.parametrize(("n", "dx", "dy"), [(150, 8, 12), (20, 60, 90), (40, 3, 200)])
def test_linear_cka_equals_the_hsic_formulation(n: int, dx: int, dy: int) -> None:
    rng = np.random.default_rng(dx)
    X = rng.normal(size=(n, dx)) + 3
    Y = np.tanh(X @ rng.normal(size=(dx, dy))) + 0.5 * rng.normal(size=(n, dy)) - 7  # related, not linearly
    value = linear_cka(X, Y)
    assert value == pytest.approx(_cka_by_hsic(X, Y), rel=1e-9)
    assert 0 < value < 1
    assert linear_cka(Y, X) == pytest.approx(value, rel=1e-12)


def test_linear_cka_invariances() -> None:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(100, 10)) * np.linspace(1, 4, 10)
    Y = X[:, :6] @ rng.normal(size=(6, 6)) + 0.3 * rng.normal(size=(100, 6))
    Q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    value = linear_cka(X, Y)
    assert linear_cka(X @ Q, Y) == pytest.approx(value, rel=1e-10)
    assert linear_cka(2.5 * X + 40, Y) == pytest.approx(value, rel=1e-10)  # isotropic scaling, translation
    assert linear_cka(X, X) == pytest.approx(1.0, rel=1e-12)
    assert linear_cka(X, -0.1 * X @ Q) == pytest.approx(1.0, rel=1e-12)
    assert abs(linear_cka(X * np.linspace(1, 30, 10), Y) - value) > 1e-3  # but not anisotropic scaling


def test_linear_cka_of_independent_features_is_small_and_shrinks_with_n() -> None:
    def mean_cka(n: int) -> float:
        rng = np.random.default_rng(n)
        return float(np.mean([linear_cka(rng.normal(size=(n, 5)), rng.normal(size=(n, 5))) for _ in range(5)]))

    small, large = mean_cka(100), mean_cka(1600)
    assert small < 0.15 and large < 0.02 and large < small / 4  # about sqrt(dx·dy)/n


def test_linear_cka_rejects_mismatched_or_non_finite_rows_and_is_nan_without_variance() -> None:
    rng = np.random.default_rng(4)
    X = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="same rows"):
        linear_cka(X, X[:9])
    holed = X.copy()
    holed[2, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        linear_cka(X, holed)
    assert np.isnan(linear_cka(X, np.ones((10, 4))))


def test_cka_matrix_is_symmetric_with_unit_diagonal_and_drops_non_finite_rows_everywhere() -> None:
    rng = np.random.default_rng(5)
    base = rng.normal(size=(80, 16))
    models = {"a": base, "b": base @ rng.normal(size=(16, 32)), "c": rng.normal(size=(80, 4))}
    models["b"][[5, 60]] = np.nan
    table = cka_matrix(models)
    kept = np.delete(np.arange(80), [5, 60])
    assert list(table.index) == list(table.columns) == ["a", "b", "c"]
    assert np.allclose(table.to_numpy(), table.to_numpy().T)
    assert np.allclose(np.diag(table.to_numpy()), 1.0)
    for first in models:
        for second in models:
            assert table.loc[first, second] == pytest.approx(linear_cka(models[first][kept], models[second][kept]))
    assert table.attrs["notes"] == ["cka: 2 row(s) with non-finite values in some model left out"]
    assert table.loc["a", "b"] > 0.5 > table.loc["a", "c"]

    with_constant = cka_matrix({"a": base, "flat": np.zeros((80, 3))})
    assert np.isnan(with_constant.loc["flat", "flat"]) and np.isnan(with_constant.loc["a", "flat"])
    assert with_constant.attrs["notes"] == []
    with pytest.raises(ValueError, match="same rows"):
        cka_matrix({"a": base, "b": base[:70]})
    assert cka_matrix({}).empty


def _panels(figure: Figure) -> list[Axes]:
    return [axes for axes in figure.axes if axes.get_label() != "<colorbar>"]


def _legend(axes: Axes) -> list[str]:
    legend = axes.get_legend()
    return [] if legend is None else [text.get_text() for text in legend.get_texts()]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=40)
    return buffer.getvalue()


def _clusters(rng: np.random.Generator, n: int, d: int = 20) -> np.ndarray:
    X = rng.normal(size=(n, d))
    X[: n // 2] += 4
    return X


def test_projection_has_a_panel_per_colouring_with_legends_a_colour_bar_and_missing_values() -> None:
    rng = np.random.default_rng(6)
    n = 90
    X = _clusters(rng, n)
    label = pd.Series(np.repeat([0, 1], n // 2), index=np.arange(100, 100 + n))  # the index is ignored
    sex = pd.Series(["F", "M", None] * (n // 3))
    age = pd.Series(rng.uniform(20, 90, n))
    age[[4, 8]] = np.nan
    figure = projection_figure(X, {"label": label, "sex": sex, "age": age}, "dinov2 · lesion", seed=1)
    assert figure is not None
    panels = _panels(figure)
    assert [axes.get_title() for axes in panels] == ["label", "sex", "age"]
    assert _legend(panels[0]) == ["0", "1"]
    assert _legend(panels[1]) == ["F", "M", "missing"]
    assert _legend(panels[2]) == ["missing"]
    assert len(figure.axes) == 4  # one colour bar, for age
    drawn = sum(np.asarray(collection.get_offsets()).shape[0] for collection in panels[1].collections)
    assert drawn == n
    coloured = panels[2].collections[-1]  # the age values, on top of the missing ones
    assert np.allclose(np.sort(np.asarray(coloured.get_array())), np.sort(age.dropna().to_numpy()))
    assert "90 samples (seed 1)" in figure.get_suptitle()


def test_projection_is_deterministic_with_the_seed_and_subsamples() -> None:
    rng = np.random.default_rng(7)
    X = _clusters(rng, 120, d=70)  # more than PCA_DIMS: PCA first
    X[11] = np.nan
    first, second = tsne_coordinates(X, seed=3, max_points=80), tsne_coordinates(X, seed=3, max_points=80)
    assert first is not None and second is not None
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])
    rows = first[0]
    assert len(rows) == 80 and np.all(np.diff(rows) > 0) and 11 not in rows
    other = tsne_coordinates(X, seed=4, max_points=80)
    assert other is not None and not np.array_equal(other[0], rows)

    colours = {"label": pd.Series(np.arange(120) % 3)}
    figure_a = projection_figure(X, colours, "t", seed=3, max_points=80)
    figure_b = projection_figure(X, colours, "t", seed=3, max_points=80)
    assert figure_a is not None and figure_b is not None
    assert _png(figure_a) == _png(figure_b)
    assert "80 of 120 samples" in figure_a.get_suptitle()


def test_projection_needs_a_few_varied_rows_and_matching_colourings() -> None:
    rng = np.random.default_rng(8)
    assert projection_figure(rng.normal(size=(4, 3)), {}, "few") is None
    few_finite = rng.normal(size=(8, 3))
    few_finite[:4] = np.nan
    assert projection_figure(few_finite, {}, "few finite") is None
    assert projection_figure(np.ones((30, 3)), {}, "constant") is None
    plain = projection_figure(rng.normal(size=(6, 3)), {}, "plain")
    assert plain is not None and len(_panels(plain)) == 1
    with pytest.raises(ValueError, match="3 values for 6"):
        projection_figure(rng.normal(size=(6, 3)), {"label": pd.Series([1, 2, 3])}, "x")


def test_many_categories_are_capped_with_other_and_colourings_come_from_the_spec() -> None:
    rng = np.random.default_rng(9)
    frame = pd.DataFrame({"label": ["a", "b"] * 30, "score": rng.normal(size=60), "age": rng.uniform(20, 80, 60),
                          "scanner": [f"s{i % 30}" for i in range(60)], "sex": ["F", "M", ""] * 20,
                          "nine": [f"n{i % 9}" for i in range(60)], "eighteen": [f"e{i % 18}" for i in range(60)]})
    frame.loc[3, "age"] = np.nan
    options = SubgroupOptions(columns=["scanner", "sex", "absent", "nine", "eighteen"], bins={"age": [0, 40, 60, 100]})
    colours = projection_colours(frame, {"label": "classification", "score": "regression"}, options)
    assert list(colours) == ["label", "score", "scanner", "sex", "nine", "eighteen", "age"]
    assert colours["score"].dtype == np.float64
    assert colours["age"].isna().sum() == 1 and set(colours["age"].dropna()) <= {"0-40", "40-60", "60-100"}

    figure = projection_figure(_clusters(rng, 60), colours, "spec")
    assert figure is not None
    panels = {axes.get_title(): axes for axes in _panels(figure)}
    assert _legend(panels["label"]) == ["a", "b"]
    assert _legend(panels["score"]) == []  # a colour bar
    scanners = _legend(panels["scanner"])
    assert len(scanners) == MAX_LEGEND and scanners[-1] == "other" and scanners[:3] == ["s0", "s1", "s2"]
    assert _legend(panels["sex"]) == ["F", "M", "missing"]  # a blank value is missing
    assert _legend(panels["age"]) == ["0-40", "40-60", "60-100", "missing"]
    assert _legend(panels["eighteen"]) == [f"e{i}" for i in range(18)]  # as many as there are colours
    assert len(figure.axes) == 8  # the colour bar of the regression target
    greys = {to_hex("#c8c8c8"), to_hex("#707070"), to_hex("#7f7f7f"), to_hex("#c7c7c7")}
    for name in ("nine", "eighteen", "scanner"):
        colours_drawn = [to_hex(tuple(np.asarray(c.get_facecolor())[0])) for c in panels[name].collections]
        categories = colours_drawn[1:] if name == "scanner" else colours_drawn  # "other" is drawn first
        assert len(set(categories)) == len(categories) and not set(categories) & greys
