import numpy as np
import pytest
from sklearn.base import clone

from medprobe.probes import KNNProbe, evaluate_protocol
from medprobe.probes.options import KnnOptions


def _loop_knn(train: np.ndarray, labels: np.ndarray, query: np.ndarray, k: int, t: float, n_out: int | None):
    """DINO weighted voting, one test sample at a time, in float64."""
    train = train / np.linalg.norm(train, axis=1, keepdims=True)
    outputs = []
    for q in query:
        sims = train @ (q / np.linalg.norm(q))
        nearest = np.argsort(-sims)[:k]
        weights = np.exp(sims[nearest] / t)
        if n_out is None:  # regression: weighted mean of targets
            outputs.append((weights * labels[nearest]).sum() / weights.sum())
        else:
            scores = np.zeros(n_out)
            for j, w in zip(nearest, weights, strict=True):
                scores[labels[j]] += w
            outputs.append(scores / scores.sum())
    return np.array(outputs)


def test_classification_matches_a_per_sample_loop() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(60, 8))
    labels = rng.integers(0, 3, size=60)
    query = rng.normal(size=(15, 8))
    probe = KNNProbe(k=7, temperature=0.1).fit(train, labels)
    expected = _loop_knn(train, labels, query, 7, 0.1, 3)
    np.testing.assert_allclose(probe.predict_proba(query), expected, atol=1e-5)
    np.testing.assert_array_equal(probe.predict(query), expected.argmax(axis=1))


def test_regression_matches_a_per_sample_loop() -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(50, 5))
    targets = rng.normal(size=50)
    query = rng.normal(size=(10, 5))
    probe = KNNProbe(task="regression", k=5, temperature=0.07).fit(train, targets)
    np.testing.assert_allclose(probe.predict(query), _loop_knn(train, targets, query, 5, 0.07, None), atol=1e-5)


def test_all_k_from_one_pass_equal_separate_fits() -> None:
    rng = np.random.default_rng(2)
    train, labels = rng.normal(size=(40, 4)), rng.choice(["a", "b"], size=40)
    query = rng.normal(size=(12, 4))
    many = KNNProbe(k=20).fit(train, labels).predict_many(query, [1, 5, 20])
    for k in (1, 5, 20):
        np.testing.assert_allclose(many[k], KNNProbe(k=k).fit(train, labels).predict_proba(query), atol=1e-12)


def test_chunked_search_matches_full_similarity_matrix() -> None:
    rng = np.random.default_rng(3)
    train = rng.normal(size=(1 << 14, 4)).astype(np.float32)  # 1024 query rows per chunk
    query = rng.normal(size=(1100, 4)).astype(np.float32)
    sims, idx = KNNProbe(k=3).fit(train, np.zeros(len(train))).kneighbors(query)
    unit = train / np.linalg.norm(train, axis=1, keepdims=True)
    full = (query / np.linalg.norm(query, axis=1, keepdims=True)) @ unit.T
    expected = -np.sort(-np.partition(full, -3, axis=1)[:, -3:], axis=1)
    np.testing.assert_allclose(sims, expected, atol=1e-5)
    np.testing.assert_allclose(np.take_along_axis(full, idx, axis=1), expected, atol=1e-5)


def test_k_larger_than_training_set_uses_all_rows() -> None:
    rng = np.random.default_rng(4)
    train, labels = rng.normal(size=(6, 3)), np.array([0, 0, 0, 1, 1, 1])
    probe = KNNProbe(k=50).fit(train, labels)
    assert probe.n_neighbors_ == 6
    expected = _loop_knn(train, labels, train[:2], 6, 0.07, 2)
    np.testing.assert_allclose(probe.predict_proba(train[:2]), expected, atol=1e-5)
    assert clone(probe).get_params() == probe.get_params()


def test_protocol_reports_every_k_and_clips_primary_k_with_notes() -> None:
    rng = np.random.default_rng(5)
    n = 30
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = rng.integers(0, 2, size=n)
    subjects = np.arange(n).astype(str)
    split = np.array(["train"] * 20 + ["test"] * 10)
    options = {"k": [5, 10, 50], "primary_k": 40}
    result = evaluate_protocol("knn", options, X, y, "classification", subjects, split)
    assert result.params["k"] == 20
    assert {"k5/accuracy", "k10/accuracy", "k20/accuracy", "accuracy"} <= set(result.metrics)
    assert "k50/accuracy" not in result.metrics
    assert result.metrics["accuracy"] == result.metrics["k20/accuracy"]
    assert any("primary_k 40" in note for note in result.notes)
    assert any("k 50 skipped" in note for note in result.notes)

    probe = KNNProbe(k=20).fit(X[:20], y[:20])
    np.testing.assert_allclose(result.predictions[["proba_0", "proba_1"]].to_numpy(), probe.predict_proba(X[20:]))


def test_separable_data_gives_near_perfect_accuracy_and_random_labels_chance() -> None:
    rng = np.random.default_rng(6)
    y = rng.integers(0, 4, size=240)
    centres = rng.normal(size=(4, 16)) * 4
    X = (rng.normal(size=(240, 16)) + centres[y]).astype(np.float32)
    subjects = np.repeat(np.arange(120), 2).astype(str)
    separable = evaluate_protocol("knn", {}, X, y, "classification", subjects, None)
    assert separable.metrics["accuracy"] > 0.95

    noise = rng.normal(size=(240, 16)).astype(np.float32)
    chance = evaluate_protocol("knn", {}, noise, y, "classification", subjects, None)
    assert chance.metrics["accuracy"] == pytest.approx(0.25, abs=0.1)
    assert chance.metrics["auroc"] == pytest.approx(0.5, abs=0.1)


def test_regression_protocol_predicts_a_smooth_target() -> None:
    rng = np.random.default_rng(7)
    angle = rng.uniform(0, np.pi, size=200)
    X = np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32)
    subjects = np.arange(200).astype(str)
    result = evaluate_protocol("knn", {"k": [5], "primary_k": 5}, X, angle, "regression", subjects, None)
    assert result.metrics["r2"] > 0.95
    assert "k5/mae" in result.metrics


def test_validation_split_chooses_k_by_log_loss_as_a_direct_loop_scores_it() -> None:
    rng = np.random.default_rng(21)
    n = 240
    y = rng.integers(0, 2, size=n)
    X = rng.normal(size=(n, 8)) + 0.8 * y[:, None]
    split = np.array(["train"] * 140 + ["val"] * 50 + ["test"] * 50)
    subjects = np.array([f"s{i}" for i in range(n)])
    ks = [1, 5, 25, 100]
    result = evaluate_protocol("knn", {"k": ks, "primary_k": 5, "bootstrap": 0}, X, y, "classification", subjects,
                               split)
    probe = KNNProbe(k=100).fit(X[:140], y[:140])
    losses = {}
    for k, proba in probe.predict_many(X[140:190], ks).items():
        true = np.clip(proba[np.arange(50), y[140:190]], 1e-15, 1.0)
        losses[k] = -np.log(true).mean()
    expected = min(losses, key=lambda k: (losses[k], k))
    assert result.params["k"] == expected and result.params["k_selection"] == "val log_loss"
    assert losses[1] > losses[expected]  # one neighbour gives 0/1 probabilities: log-loss rules it out
    assert result.metrics["accuracy"] == result.metrics[f"k{expected}/accuracy"]
    fixed = evaluate_protocol("knn", {"k": ks, "primary_k": 5, "selection": "primary_k", "bootstrap": 0}, X, y,
                              "classification", subjects, split)
    assert fixed.params["k"] == 5 and fixed.params["k_selection"] == "primary_k"
    cross_validated = evaluate_protocol("knn", {"k": ks, "primary_k": 5, "bootstrap": 0}, X, y, "classification",
                                        subjects)
    assert cross_validated.params["k"] == 5  # no validation split: primary_k


def test_a_k_list_without_primary_k_has_its_headline_inside_the_list() -> None:
    rng = np.random.default_rng(11)
    n = 40
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = rng.integers(0, 2, size=n)
    subjects = np.arange(n).astype(str)
    split = np.array(["train"] * 30 + ["test"] * 10)
    result = evaluate_protocol("knn", {"k": [5], "bootstrap": 0}, X, y, "classification", subjects, split)
    assert result.params["k"] == 5 and result.params["ks"] == "5"
    assert result.metrics["accuracy"] == result.metrics["k5/accuracy"] and "k20/accuracy" not in result.metrics
    assert not any("primary_k" in note for note in result.notes)


@pytest.mark.parametrize(("ks", "headline"), [([5], 5), (7, 7), ([10, 20, 50], 20), ([5, 10, 50], 10),
                                              ([50, 100], 50), (None, 20)])
def test_the_headline_k_of_a_list_without_primary_k(ks: list[int] | int | None, headline: int) -> None:
    options = KnnOptions.model_validate({} if ks is None else {"k": ks})
    assert options.primary_k == headline and headline in options.k
    assert KnnOptions.model_validate(options.model_dump()) == options  # a dumped spec reads back the same


def test_a_primary_k_outside_the_list_is_run_and_noted() -> None:
    rng = np.random.default_rng(12)
    n = 40
    X = rng.normal(size=(n, 4)).astype(np.float32)
    y = rng.integers(0, 2, size=n)
    subjects = np.arange(n).astype(str)
    split = np.array(["train"] * 30 + ["test"] * 10)
    result = evaluate_protocol("knn", {"k": [5, 10], "primary_k": 7, "bootstrap": 0}, X, y, "classification",
                               subjects, split)
    assert result.params["k"] == 7 and result.metrics["accuracy"] == result.metrics["k7/accuracy"]
    assert any("primary_k 7 is not in k (5, 10)" in note for note in result.notes)
