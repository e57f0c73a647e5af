"""The default probe suite against the straightforward scikit-learn loop that computes the same numbers.

    python benchmarks/bench_probes.py [--quick] [--n 10000] [--dim 768] [--classes 10]

Synthetic embeddings (n × dim, `classes` Gaussian classes, 4 rows per subject) with a train/val/test split by
subject (60/20/20). Both sides compute, on the same split and features:
- linear: logistic regression over medprobe's default C grid (1e-6 … 1e5), C chosen on val log-loss, refit on
  train + val; medprobe: torch L-BFGS along a warm-started path; reference: `LogisticRegression(C)` per C;
- k-NN at k = 10, 20, 50, 100, 200 (cosine, T = 0.07); medprobe: one top-k pass; reference: one
  `NearestNeighbors(metric="cosine")` search and vote per k;
- few-shot at 1, 2, 4, 8, 16 shots × 100 episodes, SimpleShot and ridge classifier; medprobe: batched episodes;
  reference: per episode a centroid loop and `RidgeClassifier(alpha=1).fit`;
- 1000 subject-bootstrap resamples of accuracy, balanced accuracy, macro F1, macro AUROC and AUPRC on the linear
  and k-NN test predictions; medprobe: weighted and vectorised; reference: per-resample scikit-learn calls.
Prints both wall times with a per-stage breakdown (each protocol without its bootstrap, and the bootstraps), the
speed-up and the largest difference between the numbers. `--quick`: n = 2000, dim 128.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from contextlib import contextmanager

import numpy as np
from sklearn import metrics as sk
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.neighbors import NearestNeighbors

import medprobe.metrics.scoring
from medprobe.metrics import subject_resamples
from medprobe.probes import evaluate_protocol
from medprobe.probes.fewshot import episode_rng, sample_episode, simpleshot_transform
from medprobe.probes.linear import DEFAULT_C_GRID

KS, SHOTS, EPISODES, RESAMPLES, T = [10, 20, 50, 100, 200], [1, 2, 4, 8, 16], 100, 1000, 0.07
BOOT = ("accuracy", "balanced_accuracy", "f1_macro", "auroc", "auprc")


def make_data(n: int, dim: int, n_classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_subjects = n // 4
    subject_class = rng.integers(0, n_classes, size=n_subjects)
    subjects = np.repeat([f"s{i:05d}" for i in range(n_subjects)], 4)
    y = np.repeat(subject_class, 4)
    centres = rng.normal(size=(n_classes, dim)) * 0.12
    X = (rng.normal(size=(len(y), dim)) + centres[y] + 0.5 * rng.normal(size=(n_subjects, dim)).repeat(4, 0))
    split = np.repeat(rng.choice(["train", "val", "test"], p=[0.6, 0.2, 0.2], size=n_subjects), 4)
    return X.astype(np.float32), y, subjects, split


@contextmanager
def stage(timings: dict[str, float], name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] += time.perf_counter() - start


def medprobe_suite(X, y, subjects, split, timings):
    """Each protocol through `evaluate_protocol`; the time its bootstrap takes is booked under "<protocol>
    bootstrap" (by timing `bootstrap_intervals` as `scored_metrics` calls it) and left out of the protocol's."""
    out, common = {}, {"bootstrap": RESAMPLES}
    intervals = medprobe.metrics.scoring.bootstrap_intervals
    for protocol in ("linear", "knn", "fewshot"):
        def timed(*args, protocol=protocol, **kwargs):
            with stage(timings, f"{protocol} bootstrap"):
                return intervals(*args, **kwargs)

        medprobe.metrics.scoring.bootstrap_intervals = timed
        try:
            with stage(timings, protocol):
                options = {**common, "selection": "primary_k"} if protocol == "knn" else common  # k = 20 headline
                result = evaluate_protocol(protocol, options, X, y, "classification", subjects, split)
                out[protocol] = {**result.metrics, **({"C": result.params["C"]} if protocol == "linear" else {})}
        finally:
            medprobe.metrics.scoring.bootstrap_intervals = intervals
        timings[protocol] -= timings.get(f"{protocol} bootstrap", 0.0)
    return out


def sklearn_suite(X, y, subjects, split, timings):
    import warnings

    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")  # resamples missing a class
    train, val, test = (np.flatnonzero(split == s) for s in ("train", "val", "test"))
    fit = np.concatenate([train, val])
    out = {}
    with stage(timings, "linear"):
        out["linear"], proba = _reference_linear(X, y, train, val, test)
    with stage(timings, "linear bootstrap"):
        out["linear"].update(_bootstrap(y[test], proba, subjects[test]))
    with stage(timings, "knn"):
        out["knn"], proba = _reference_knn(X, y, fit, test)
    with stage(timings, "knn bootstrap"):
        out["knn"].update(_bootstrap(y[test], proba, subjects[test]))
    with stage(timings, "fewshot"):
        out["fewshot"] = _reference_fewshot(X, y, subjects, fit, test)
    return out


def _reference_linear(X, y, train, val, test):
    """One LogisticRegression per C on train, the first best val log-loss, refit on train + val."""
    fit = np.concatenate([train, val])
    mean, std = X[train].astype(np.float64).mean(0), X[train].astype(np.float64).std(0)
    scores = [-sk.log_loss(y[val], LogisticRegression(C=c, max_iter=1000).fit((X[train] - mean) / std, y[train])
                           .predict_proba((X[val] - mean) / std), labels=np.unique(y)) for c in DEFAULT_C_GRID]
    best = DEFAULT_C_GRID[int(np.argmax(np.array(scores) >= max(scores) - 1e-12))]
    mean, std = X[fit].astype(np.float64).mean(0), X[fit].astype(np.float64).std(0)
    proba = LogisticRegression(C=best, max_iter=1000).fit((X[fit] - mean) / std, y[fit]).predict_proba(
        (X[test] - mean) / std)
    return {**_metrics(y[test], proba), "C": best}, proba


def _reference_knn(X, y, fit, test):
    """A search and a vote per k; returns the metrics and the k = 20 probabilities."""
    out = {}
    index = NearestNeighbors(metric="cosine").fit(X[fit])
    n_classes = len(np.unique(y))
    for k in KS:
        distance, neighbours = index.kneighbors(X[test], n_neighbors=k)
        weights = np.exp((1 - distance) / T)
        votes = np.zeros((len(test), n_classes))
        for column in range(k):
            np.add.at(votes, (np.arange(len(test)), y[fit][neighbours[:, column]]), weights[:, column])
        proba = votes / votes.sum(1, keepdims=True)
        out[f"k{k}/accuracy"] = float((proba.argmax(1) == y[test]).mean())
        if k == 20:
            out.update(_metrics(y[test], proba))
            primary = proba
    return out, primary


def _reference_fewshot(X, y, subjects, fit, test):
    """Per episode: a centroid per class (SimpleShot) and a `RidgeClassifier` fit."""
    out = {}
    centre = X[fit].mean(0, dtype=np.float64)
    pool, queries = simpleshot_transform(X[fit], centre), simpleshot_transform(X[test], centre)
    classes = np.unique(y[fit])
    candidates = [np.unique(subjects[fit][y[fit] == c]) for c in classes]
    for shots in SHOTS:
        simple, ridge = [], []
        for episode in range(EPISODES):
            chosen = sample_episode(candidates, shots, episode_rng(0, 0, shots, episode))
            support = np.isin(subjects[fit], np.concatenate(chosen))
            centroids = np.stack([pool[support & (y[fit] == c)].mean(0) for c in classes])
            centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
            simple.append((classes[(queries @ centroids.T).argmax(1)] == y[test]).mean())
            model = RidgeClassifier(alpha=1.0).fit(pool[support].astype(np.float64), y[fit][support])
            ridge.append((model.predict(queries.astype(np.float64)) == y[test]).mean())
        out[f"shots{shots}/accuracy_mean"] = float(np.mean(simple))
        out[f"shots{shots}/linear_accuracy_mean"] = float(np.mean(ridge))
    return out


def _metrics(y, proba):
    """As medprobe defines them: macro AUROC / AUPRC over the classes with positives and negatives present."""
    predicted = proba.argmax(1)
    present = [c for c in range(proba.shape[1]) if 0 < (y == c).sum() < len(y)]
    return {
        "accuracy": sk.accuracy_score(y, predicted),
        "balanced_accuracy": sk.balanced_accuracy_score(y, predicted),
        "f1_macro": sk.f1_score(y, predicted, average="macro"),
        "auroc": float(np.mean([sk.roc_auc_score(y == c, proba[:, c]) for c in present])),
        "auprc": float(np.mean([sk.average_precision_score(y == c, proba[:, c]) for c in present])),
    }


def _bootstrap(y, proba, subjects):
    codes, drawn = subject_resamples(subjects, RESAMPLES, 0)  # the same resamples medprobe draws (seed 0)
    rows_of = [np.flatnonzero(codes == s) for s in range(codes.max() + 1)]
    values = {name: [] for name in BOOT}
    for row in drawn:
        rows = np.concatenate([rows_of[s] for s in row])
        for name, value in _metrics(y[rows], proba[rows]).items():
            values[name].append(value)
    out = {}
    for name, series in values.items():
        out[f"{name}_ci_low"], out[f"{name}_ci_high"] = np.percentile(series, [2.5, 97.5])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n 2000, dim 128: a smoke run")
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--classes", type=int, default=10)
    args = parser.parse_args()
    n, dim = (2000, 128) if args.quick else (args.n, args.dim)
    X, y, subjects, split = make_data(n, dim, args.classes)
    print(f"{n} x {dim}, {args.classes} classes, {len(np.unique(subjects))} subjects; split 60/20/20 by subject")
    ours_stages, reference_stages = defaultdict(float), defaultdict(float)
    start = time.perf_counter()
    ours = medprobe_suite(X, y, subjects, split, ours_stages)
    ours_time = time.perf_counter() - start
    print(f"medprobe suite: {ours_time:.1f} s")
    start = time.perf_counter()
    reference = sklearn_suite(X, y, subjects, split, reference_stages)
    reference_time = time.perf_counter() - start
    print(f"scikit-learn loop: {reference_time:.1f} s")
    print(f"speed-up: {reference_time / ours_time:.1f}x")
    print(f"{'stage':18} {'medprobe s':>10} {'sklearn s':>10} {'speed-up':>9}")
    for name in ("linear", "linear bootstrap", "knn", "knn bootstrap", "fewshot"):
        mine, theirs = ours_stages[name], reference_stages[name]
        print(f"{name:18} {mine:10.2f} {theirs:10.2f} {theirs / max(mine, 1e-9):8.1f}x")
    print(f"{'protocol':9} {'metric':34} {'medprobe':>9} {'sklearn':>9} {'diff':>8}")
    worst = 0.0
    for protocol, values in reference.items():
        for name, value in values.items():
            if name in ours[protocol]:
                diff = abs(ours[protocol][name] - value)
                worst = max(worst, diff) if name != "C" else worst
                print(f"{protocol:9} {name:34} {ours[protocol][name]:9.4f} {value:9.4f} {diff:8.1e}")
    print(f"largest difference (C excluded): {worst:.2e}")


if __name__ == "__main__":
    main()
