"""Each protocol against an independent reference on the same features."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression, Ridge, RidgeClassifier

from medprobe.errors import ProbeError
from medprobe.probes import AttentiveProbe, LinearProbe, evaluate_protocol
from medprobe.probes.fewshot import episode_rng, sample_episode, simpleshot_episodes, simpleshot_transform


def _blobs(seed: int, n: int, d: int, k: int, shift: float = 1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, size=n)
    X = rng.normal(size=(n, d)) + rng.normal(size=(k, d))[y] * shift
    return X * rng.uniform(0.1, 10, size=d), y


@pytest.mark.parametrize(("k", "class_weight"), [(2, None), (4, None), (3, "balanced")])
def test_logistic_matches_sklearn_at_the_chosen_c(k: int, class_weight: str | None) -> None:
    X, y = _blobs(k, 150, 8, k)
    probe = LinearProbe(grid=[0.01, 0.1, 1.0], class_weight=class_weight).fit(X, y)
    Z = (X - probe.mean_) / probe.scale_
    reference = LogisticRegression(C=probe.best_C_, class_weight=class_weight, tol=1e-10, max_iter=10000).fit(Z, y)
    X_new, _ = _blobs(99, 40, 8, k)
    np.testing.assert_allclose(probe.predict_proba(X_new), reference.predict_proba((X_new - probe.mean_) /
                                                                                   probe.scale_), atol=1e-3)


@pytest.mark.parametrize("n", [60, 6])  # primal (n >= d) and dual (n < d) eigendecompositions
def test_ridge_matches_sklearn_for_every_alpha(n: int) -> None:
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, 10))
    y = X @ rng.normal(size=10) + rng.normal(size=n)
    probe = LinearProbe(task="regression", grid=[1e-2, 1.0, 1e2]).fit(X, y)
    Z = (X - probe.mean_) / probe.scale_
    reference = Ridge(alpha=probe.best_alpha_).fit(Z, y)
    np.testing.assert_allclose(probe.coef_, reference.coef_, atol=1e-6)
    np.testing.assert_allclose(probe.predict(X), reference.predict(Z), atol=1e-6)


def test_knn_matches_a_direct_dino_loop() -> None:
    X, y = _blobs(1, 200, 12, 3, shift=0.5)
    subjects = np.arange(200).astype(str)
    split = np.where(np.arange(200) < 150, "train", "test")
    result = evaluate_protocol("knn", {"k": [10], "primary_k": 10, "bootstrap": 0}, X, y, "classification",
                               subjects, split)
    train = X[:150] / np.linalg.norm(X[:150], axis=1, keepdims=True)
    correct = 0
    for x, label in zip(X[150:], y[150:], strict=True):
        sims = train @ (x / np.linalg.norm(x))
        top = np.argsort(-sims)[:10]
        votes = np.zeros(3)
        for i in top:
            votes[y[i]] += np.exp(sims[i] / 0.07)
        correct += votes.argmax() == label
    assert result.metrics["accuracy"] == pytest.approx(correct / 50, abs=0.005)


def test_fewshot_ridge_matches_sklearn_ridge_classifier_per_episode() -> None:
    rng = np.random.default_rng(2)
    rows = rng.integers(1, 3, size=60)
    subjects = np.repeat([f"p{i:02d}" for i in range(60)], rows)
    y = np.repeat(rng.integers(0, 3, size=60), rows)
    X = (rng.normal(size=(len(y), 16)) + rng.normal(size=(3, 16))[y]).astype(np.float32)
    queries = rng.normal(size=(30, 16)).astype(np.float32)
    classes = np.arange(3)
    rngs = [episode_rng(0, 0, 2, e) for e in range(5)]
    _, ridge = simpleshot_episodes(X, y, subjects, queries, classes, 2, rngs, linear_alpha=1.0)
    mean = X.mean(axis=0, dtype=np.float64)
    pool, query = simpleshot_transform(X, mean), simpleshot_transform(queries, mean)
    candidates = [np.unique(subjects[y == c]) for c in classes]
    for e in range(5):
        chosen = sample_episode(candidates, 2, episode_rng(0, 0, 2, e))
        support = np.isin(subjects, np.concatenate(chosen))
        reference = RidgeClassifier(alpha=1.0).fit(pool[support].astype(np.float64), y[support])
        agreement = (reference.predict(query.astype(np.float64)) == ridge[e]).mean()
        assert agreement >= 0.995


def _signal_in_two_tokens(n: int = 240, T: int = 16, D: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The label sits in 2 random tokens of each sample; every other token is noise, so mean pooling dilutes it."""
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=n)
    tokens = rng.normal(size=(n, T, D)).astype(np.float32)
    marker = rng.normal(size=D) * 3
    for i in range(n):
        where = rng.choice(T, size=2, replace=False)
        tokens[i, where] += marker * (1 if y[i] else -1)
    return tokens, y


def test_attentive_probe_finds_the_signal_in_a_few_tokens() -> None:
    tokens, y = _signal_in_two_tokens()
    n = len(y)
    probe = AttentiveProbe(queries=4, epochs=40, lr=3e-3, batch_size=64).fit(tokens[:180], y[:180])
    assert probe.score(tokens[180:], y[180:]) >= 0.9
    assert probe.predict_proba(tokens[180:]).shape == (60, 2)
    pooled = tokens.mean(axis=1)
    result = evaluate_protocol("attentive", {"queries": 4, "epochs": 20, "lr": 3e-3, "batch_size": 64,
                                             "bootstrap": 0},
                               pooled, y, "classification", np.arange(n).astype(str), None, tokens=tokens)
    assert result.metrics["accuracy"] >= 0.85


def test_attentive_probe_trains_with_lars_on_float16_tokens() -> None:
    """The paper's recipe: LARS, base lr 0.1 scaled by batch/256, warm-up then cosine, no weight decay."""
    tokens, y = _signal_in_two_tokens()
    probe = AttentiveProbe(queries=4, epochs=40, optimizer="lars", batch_size=64)
    probe.fit(tokens[:180].astype(np.float16), y[:180])
    assert probe.loss_curve_[-1] < 0.5 * probe.loss_curve_[0]
    assert probe.score(tokens[180:].astype(np.float16), y[180:]) >= 0.9
    result = evaluate_protocol("attentive", {"queries": 4, "epochs": 10, "optimizer": "lars", "batch_size": 64,
                                             "bootstrap": 0},
                               tokens.mean(axis=1), y, "classification", np.arange(len(y)).astype(str), None,
                               tokens=tokens.astype(np.float16))
    assert result.params["optimizer"] == "lars" and result.params["lr"] == 0.1 and result.params["weight_decay"] == 0
    with pytest.raises(ProbeError, match="optimizer"):
        AttentiveProbe(optimizer="sgd").fit(tokens[:10], y[:10])


def test_attentive_without_tokens_is_refused() -> None:
    X, y = _blobs(4, 40, 4, 2)
    with pytest.raises(ProbeError, match="patch tokens"):
        evaluate_protocol("attentive", None, X, y, "classification", np.arange(40).astype(str))


def test_seed_repeats_report_mean_and_spread() -> None:
    X, y = _blobs(5, 80, 6, 2)
    subjects = np.arange(80).astype(str)
    result = evaluate_protocol("fewshot", {"shots": [1, 2], "episodes": 5, "seeds": 3, "folds": 3, "bootstrap": 0},
                               X, y, "classification", subjects, None, seed=4)
    assert result.params["seeds"] == 3
    assert "accuracy_seed_std" in result.metrics
    singles = [evaluate_protocol("fewshot", {"shots": [1, 2], "episodes": 5, "folds": 3, "bootstrap": 0},
                                 X, y, "classification", subjects, None, seed=s).metrics["accuracy"] for s in (4, 5, 6)]
    assert result.metrics["accuracy"] == pytest.approx(np.mean(singles))


def test_degenerate_data_gives_notes_not_crashes() -> None:
    rng = np.random.default_rng(6)
    X = np.ones((40, 5))  # constant features
    X[0] = np.nan
    y = np.array([0] * 20 + [1] * 19 + [2])  # class 2 has one sample
    subjects = np.arange(40).astype(str)
    for protocol, options in (("linear", {"grid": [1.0]}), ("knn", {}), ("fewshot", {"shots": [1, 16, 64]})):
        result = evaluate_protocol(protocol, {**options, "folds": 3, "bootstrap": 50}, X, y, "classification",
                                   subjects, None)
        assert result.notes
    del rng
