import numpy as np
import pytest
from sklearn import metrics
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression, Ridge

from medprobe.errors import ProbeError
from medprobe.probes import LinearProbe, evaluate_protocol


def _blobs(rng: np.random.Generator, n: int, d: int, n_classes: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    y = rng.integers(0, n_classes, size=n)
    centres = rng.normal(size=(n_classes, d)) * shift
    return (rng.normal(size=(n, d)) + centres[y]).astype(np.float32), y


def test_classifier_matches_logistic_regression_at_the_chosen_c() -> None:
    rng = np.random.default_rng(0)
    X, y = _blobs(rng, 120, 6, 3, shift=1.0)
    X[:, 2] *= 50.0  # unequal scales: standardisation matters
    groups = np.repeat(np.arange(60), 2)
    probe = LinearProbe(grid=[0.01, 0.1, 1.0, 10.0]).fit(X, y, groups=groups)
    assert probe.best_C_ in (0.01, 0.1, 1.0, 10.0)

    X64 = X.astype(np.float64)
    np.testing.assert_allclose(probe.mean_, X64.mean(axis=0))
    np.testing.assert_allclose(probe.scale_, X64.std(axis=0))
    direct = LogisticRegression(C=probe.best_C_, tol=1e-10, max_iter=10000).fit((X64 - probe.mean_) / probe.scale_, y)
    X_new = rng.normal(size=(30, 6))
    expected = direct.predict_proba((X_new - probe.mean_) / probe.scale_)
    np.testing.assert_allclose(probe.predict_proba(X_new), expected, atol=1e-3)
    np.testing.assert_allclose(probe.coef_, direct.coef_, atol=1e-3)
    np.testing.assert_array_equal(probe.classes_, [0, 1, 2])


def test_regressor_matches_ridge_at_the_chosen_alpha() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 5)) * np.array([1, 10, 0.1, 1, 3])
    y = X @ rng.normal(size=5) + rng.normal(scale=0.3, size=80)
    probe = LinearProbe(task="regression", grid=[0.01, 1.0, 100.0]).fit(X, y)
    direct = Ridge(alpha=probe.best_alpha_).fit((X - probe.mean_) / probe.scale_, y)
    X_new = rng.normal(size=(10, 5))
    np.testing.assert_allclose(probe.predict(X_new), direct.predict((X_new - probe.mean_) / probe.scale_), atol=1e-6)


def test_validation_rows_select_c_by_validation_accuracy() -> None:
    rng = np.random.default_rng(2)
    X, y = _blobs(rng, 90, 5, 2, shift=0.6)
    X_val, y_val = _blobs(rng, 40, 5, 2, shift=0.6)
    grid = [1e-3, 1e-1, 10.0]
    probe = LinearProbe(grid=grid, selection="accuracy").fit(X, y, X_val=X_val, y_val=y_val)
    assert probe.selection_ == "val" and probe.selection_metric_ == "accuracy"

    mean, std = X.astype(np.float64).mean(axis=0), X.astype(np.float64).std(axis=0)
    accuracies = [
        LogisticRegression(C=c, max_iter=1000).fit((X - mean) / std, y).score((X_val - mean) / std, y_val) for c in grid
    ]
    np.testing.assert_allclose(probe.search_scores_, accuracies)
    assert probe.best_C_ == grid[int(np.argmax(accuracies))]  # first maximum: the smallest C on a tie
    both = np.vstack([X, X_val]).astype(np.float64)
    np.testing.assert_allclose(probe.mean_, both.mean(axis=0))  # refitted on train + val


@pytest.mark.parametrize("criterion", ["log_loss", "balanced_accuracy", "auroc"])
def test_validation_rows_select_c_by_the_chosen_criterion_as_scikit_learn_scores_it(criterion: str) -> None:
    rng = np.random.default_rng(12)
    X_all, y_all = _blobs(rng, 150, 5, 3, shift=0.5)
    X, y, X_val, y_val = X_all[:90], y_all[:90], X_all[90:], y_all[90:]
    grid = [1e-4, 1e-2, 1.0, 100.0]
    probe = LinearProbe(grid=grid, selection=criterion).fit(X, y, X_val=X_val, y_val=y_val)
    mean, std = X.astype(np.float64).mean(axis=0), X.astype(np.float64).std(axis=0)
    expected = []
    for c in grid:
        fitted = LogisticRegression(C=c, tol=1e-10, max_iter=10000).fit((X - mean) / std, y)
        proba = fitted.predict_proba((X_val - mean) / std)
        expected.append({"log_loss": -metrics.log_loss(y_val, proba, labels=[0, 1, 2]),
                         "balanced_accuracy": metrics.balanced_accuracy_score(y_val, proba.argmax(axis=1)),
                         "auroc": metrics.roc_auc_score(y_val, proba, multi_class="ovr")}[criterion])
    np.testing.assert_allclose(probe.search_scores_, expected, rtol=2e-3, atol=2e-3)
    assert probe.best_C_ == grid[int(np.argmax(expected))]
    assert probe.selection_metric_ == criterion


def test_log_loss_keeps_probabilities_where_accuracy_ties_land_on_the_strongest_regularisation() -> None:
    """Small, well separated data: every C classifies the validation rows perfectly, so accuracy ties and picks
    the smallest C (probabilities ~0.5); log-loss picks a C whose probabilities say how sure the head is."""
    rng = np.random.default_rng(13)
    y = y_val = np.array([0, 1] * 10)
    centres = np.array([[-3.0, 0, 0, 0], [3.0, 0, 0, 0]])
    X, X_val = centres[y] + rng.normal(size=(20, 4)), centres[y_val] + rng.normal(size=(20, 4))
    by_accuracy = LinearProbe(selection="accuracy").fit(X, y, X_val=X_val, y_val=y_val)
    by_log_loss = LinearProbe().fit(X, y, X_val=X_val, y_val=y_val)
    assert by_accuracy.best_C_ == 1e-6 and any("lowest value of the grid" in n for n in by_accuracy.notes_)
    assert abs(by_accuracy.predict_proba(X_val)[:, 1] - 0.5).max() < 0.01
    assert by_log_loss.best_C_ > 1e-3
    assert metrics.log_loss(y_val, by_log_loss.predict_proba(X_val)) < 0.3


def test_unknown_selection_is_refused() -> None:
    with pytest.raises(ProbeError, match="selection must be one of"):
        LinearProbe(selection="f1").fit(np.random.default_rng(5).normal(size=(6, 2)), np.array([0, 1] * 3))


def test_constant_feature_standardises_to_zero_not_nan() -> None:
    rng = np.random.default_rng(3)
    X, y = _blobs(rng, 40, 3, 2, shift=2.0)
    X[:, 1] = 0.1  # float32 0.1: constant, but not exactly representable
    probe = LinearProbe(grid=[1.0]).fit(X, y)
    assert probe.scale_[1] == 1.0
    assert np.isfinite(probe.predict_proba(X)).all()


def test_follows_the_estimator_contract() -> None:
    probe = LinearProbe(grid=[0.1, 1.0], class_weight="balanced", seed=3)
    assert clone(probe).get_params() == probe.get_params()
    with pytest.raises(NotFittedError):
        probe.predict(np.zeros((1, 2)))
    rng = np.random.default_rng(4)
    X, y = _blobs(rng, 30, 2, 2, shift=3.0)
    assert probe.fit(X, y) is probe
    assert 0.0 <= probe.score(X, y) <= 1.0
    assert not hasattr(LinearProbe(), "classes_")


def test_single_training_class_is_refused() -> None:
    with pytest.raises(ProbeError, match="single class"):
        LinearProbe().fit(np.random.default_rng(5).normal(size=(6, 2)), np.zeros(6))


def test_separable_data_gives_near_perfect_accuracy() -> None:
    rng = np.random.default_rng(6)
    X, y = _blobs(rng, 150, 8, 3, shift=5.0)
    subjects = np.repeat(np.arange(75), 2).astype(str)
    result = evaluate_protocol("linear", {"grid": [0.1, 1.0]}, X, y, "classification", subjects, None)
    assert result.metrics["accuracy"] > 0.95
    assert result.metrics["auroc"] > 0.99
    assert result.params["folds"] == 5 and result.n_test == 150


def test_random_labels_give_chance_accuracy() -> None:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(200, 8)).astype(np.float32)
    y = rng.integers(0, 2, size=200)
    subjects = np.arange(200).astype(str)
    result = evaluate_protocol("linear", {"grid": [0.01, 1.0]}, X, y, "classification", subjects, None)
    assert abs(result.metrics["accuracy"] - 0.5) < 0.12
    assert abs(result.metrics["auroc"] - 0.5) < 0.12


def test_explicit_split_with_val_rows_selects_on_val() -> None:
    rng = np.random.default_rng(8)
    X, y = _blobs(rng, 90, 4, 2, shift=3.0)
    subjects = np.arange(90).astype(str)
    split = np.array(["train"] * 50 + ["val"] * 20 + ["test"] * 20)
    result = evaluate_protocol("linear", {}, X, y, "classification", subjects, split, seed=1)
    assert result.params["selection"] == "val"
    assert result.n_train == 70 and result.n_test == 20
    assert list(result.predictions.columns) == ["row", "subject_id", "y_true", "y_pred", "proba_0", "proba_1"]


def test_regression_protocol_recovers_a_linear_target() -> None:
    rng = np.random.default_rng(9)
    X = rng.normal(size=(100, 6)).astype(np.float32)
    y = X @ rng.normal(size=6) + rng.normal(scale=0.05, size=100)
    subjects = np.repeat(np.arange(50), 2).astype(str)
    result = evaluate_protocol("linear", {"grid": [1e-3, 1.0]}, X, y, "regression", subjects, None)
    assert result.metrics["r2"] > 0.95
    assert "alpha" in result.params


def test_rare_class_reduces_inner_folds_instead_of_failing() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(9, 4))
    y = np.array([0, 0, 0, 0, 0, 0, 0, 1, 1])  # two subjects of class 1: at most 2 stratified folds
    X[y == 1] += 3
    probe = LinearProbe(inner_folds=3).fit(X, y, groups=np.arange(9))
    assert any("reduced to 2 fold" in note for note in probe.notes_)
    single = LinearProbe(inner_folds=3).fit(X[:8], np.array([0] * 7 + [1]), groups=np.arange(8))
    assert any("middle of the grid" in note for note in single.notes_)
