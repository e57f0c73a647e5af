"""Paired model comparisons against independent computations: a plain per-resample loop with scikit-learn's
metrics for the bootstrap, DeLong's test for AUROC and statsmodels' Holm correction."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, mean_absolute_error, roc_auc_score
from statsmodels.stats.multitest import multipletests

from medprobe.evaluation.paired import PAIRED_COLUMNS, compare_pair, comparison_pairs, holm_corrected, paired_table
from medprobe.metrics.bootstrap import resample_weights, subject_resamples
from medprobe.metrics.delong import delong_test

B = 300


def _binary_predictions(seed: int, n_subjects: int = 40, signal: float = 1.5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two models' predictions on the same samples (two images for some subjects): one informative, one weak."""
    rng = np.random.default_rng(seed)
    subjects = np.repeat([f"sub-{i:03d}" for i in range(n_subjects)], rng.integers(1, 3, n_subjects))
    labels = {s: int(rng.random() < 0.5) for s in np.unique(subjects)}
    y = np.array([labels[s] for s in subjects])
    frames = []
    for strength in (signal, 0.3):
        p = 1 / (1 + np.exp(-(strength * (2 * y - 1) + rng.normal(0, 1, len(y)))))
        p = np.round(p, 2)  # ties, as real probabilities have
        frames.append(pd.DataFrame({"row": np.arange(len(y)), "sample_id": [f"s{i}" for i in range(len(y))],
                                    "subject_id": subjects, "y_true": y, "y_pred": (p >= 0.5).astype(int),
                                    "proba_0": 1 - p, "proba_1": p}))
    return frames[0], frames[1]


def _most_probable(frame: pd.DataFrame) -> np.ndarray:
    """The predicted class as the metrics define it: the most probable one (the first on a tie)."""
    return frame[["proba_0", "proba_1"]].to_numpy().argmax(axis=1)


def _loop_differences(a: pd.DataFrame, b: pd.DataFrame, scorer, seed: int) -> np.ndarray:
    """The paired bootstrap the slow way: one resample at a time, scikit-learn with sample weights."""
    codes, drawn = subject_resamples(a["subject_id"].to_numpy(), B, seed)
    out = []
    for resample in range(B):
        w = resample_weights(codes, drawn[resample : resample + 1])[:, 0]
        out.append(scorer(a, w) - scorer(b, w))
    return np.array(out)


@pytest.mark.parametrize(("metric", "scorer"), [
    ("auroc", lambda f, w: roc_auc_score(f["y_true"], f["proba_1"], sample_weight=w)),
    ("accuracy", lambda f, w: accuracy_score(f["y_true"], _most_probable(f), sample_weight=w)),
    ("balanced_accuracy", lambda f, w: balanced_accuracy_score(f["y_true"], _most_probable(f), sample_weight=w)),
])
def test_paired_bootstrap_equals_a_plain_loop(metric: str, scorer) -> None:
    a, b = _binary_predictions(1)
    rows, notes = compare_pair(a, b, "classification", n_resamples=B, seed=5)
    row = next(r for r in rows if r["metric"] == metric)
    diffs = _loop_differences(a, b, scorer, seed=5)
    assert row["difference"] == pytest.approx(scorer(a, None) - scorer(b, None), abs=1e-12)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])), abs=1e-9)
    below, above = (np.sum(diffs <= 0) + 1) / (B + 1), (np.sum(diffs >= 0) + 1) / (B + 1)
    assert row["p_value"] == pytest.approx(min(1.0, 2 * min(below, above)))
    assert row["n_subjects"] == 40 and row["n_samples"] == len(a) and not notes


def test_regression_difference_and_interval_equal_a_plain_loop() -> None:
    rng = np.random.default_rng(3)
    subjects = np.repeat([f"s{i}" for i in range(30)], 2)
    y = rng.normal(50, 10, len(subjects))
    a = pd.DataFrame({"row": range(60), "sample_id": range(60), "subject_id": subjects, "y_true": y,
                      "y_pred": y + rng.normal(0, 3, 60)})
    b = a.assign(y_pred=y + rng.normal(0, 8, 60))
    rows, _ = compare_pair(a, b, "regression", n_resamples=B, seed=0)
    mae = next(r for r in rows if r["metric"] == "mae")

    def scorer(f: pd.DataFrame, w: np.ndarray | None) -> float:
        return mean_absolute_error(f["y_true"], f["y_pred"], sample_weight=w)
    diffs = _loop_differences(a, b, scorer, seed=0)
    assert (mae["ci_low"], mae["ci_high"]) == pytest.approx(tuple(np.percentile(diffs, [2.5, 97.5])), abs=1e-9)
    assert mae["difference"] < 0 and mae["ci_high"] < 0  # the better model has the lower error
    assert "delong_p" not in mae


def test_delong_columns_are_delongs_test_on_the_positive_class() -> None:
    a, b = _binary_predictions(2)
    rows, _ = compare_pair(a, b, "classification", n_resamples=50, seed=0)
    auroc = next(r for r in rows if r["metric"] == "auroc")
    direct = delong_test(a["y_true"].to_numpy() == 1, a["proba_1"].to_numpy(), b["proba_1"].to_numpy())
    assert auroc["delong_z"] == pytest.approx(direct.z) and auroc["delong_p"] == pytest.approx(direct.p_value)
    assert auroc["delong_p"] < 0.01 and auroc["p_value"] < 0.05  # a strong model against a weak one


def test_pairs_join_on_sample_id_whatever_the_order_and_say_what_only_one_scored() -> None:
    a, b = _binary_predictions(4)
    shuffled = b.sample(frac=1.0, random_state=0).iloc[:-3]  # another row order, three samples missing
    rows, notes = compare_pair(a, shuffled, "classification", n_resamples=100, seed=0)
    aligned, _ = compare_pair(a[a["sample_id"].isin(shuffled["sample_id"])], shuffled, "classification",
                              n_resamples=100, seed=0)
    assert rows == aligned
    assert any("both models scored" in note for note in notes)


def test_identical_models_differ_by_nothing() -> None:
    a, _ = _binary_predictions(5)
    rows, _ = compare_pair(a, a.copy(), "classification", n_resamples=100, seed=0)
    assert all(r["difference"] == 0 and r["p_value"] == 1.0 for r in rows)
    assert next(r for r in rows if r["metric"] == "auroc")["delong_p"] == 1.0


def test_which_pairs_are_compared() -> None:
    models = ["dinov2", "retfound", "handcrafted", "dinov2_random"]
    assert comparison_pairs(models, ["handcrafted", "dinov2_random"]) == [
        ("dinov2", "handcrafted"), ("retfound", "handcrafted"), ("dinov2_random", "handcrafted"),
        ("dinov2", "dinov2_random"), ("retfound", "dinov2_random")]
    assert len(comparison_pairs(models, [], every_pair=True)) == 6
    assert comparison_pairs(["a"], ["a"]) == []


def test_holm_is_applied_per_metric_across_the_table() -> None:
    rng = np.random.default_rng(0)
    table = pd.DataFrame({"task": "t", "protocol": "linear", "model": [f"m{i}" for i in range(8)],
                          "baseline": "b", "metric": ["auroc", "accuracy"] * 4, "difference": rng.normal(size=8),
                          "p_value": rng.uniform(0, 0.1, 8), "delong_p": [0.01, np.nan] * 4})
    corrected = holm_corrected(table)
    assert list(corrected.columns) == list(PAIRED_COLUMNS)
    for metric in ("auroc", "accuracy"):
        rows = corrected["metric"] == metric
        expected = multipletests(corrected.loc[rows, "p_value"], method="holm")[1]
        np.testing.assert_allclose(corrected.loc[rows, "p_holm"], expected)
    np.testing.assert_allclose(corrected.loc[corrected["metric"] == "auroc", "delong_p_holm"], 0.04)
    assert corrected.loc[corrected["metric"] == "accuracy", "delong_p_holm"].isna().all()


def test_paired_table_names_the_side_the_corrected_test_favours() -> None:
    strong, weak = _binary_predictions(6, n_subjects=60, signal=3.0)
    predictions = {("lesion", "linear"): {"dino": strong, "handcrafted": weak}}
    result = paired_table(predictions, {"lesion": "classification"}, [("dino", "handcrafted")], 200, 0)
    auroc = result.table[result.table["metric"] == "auroc"].iloc[0]
    assert auroc["favours"] == "dino" and auroc["p_holm"] < 0.05
    reverse = paired_table(predictions, {"lesion": "classification"}, [("handcrafted", "dino")], 200, 0)
    assert reverse.table[reverse.table["metric"] == "auroc"].iloc[0]["favours"] == "dino"


def test_a_test_split_with_one_positive_gets_no_delong_test_but_a_note() -> None:
    a, b = _binary_predictions(7, n_subjects=20)
    keep = (a["y_true"] == 0) | (a.index == a.index[a["y_true"] == 1][0])  # a single positive sample
    rows, notes = compare_pair(a[keep], b[keep], "classification", n_resamples=50, seed=0)
    assert rows and all("delong_p" not in row for row in rows)
    assert any("no DeLong test: 1 positive" in note for note in notes)
