"""Subgroup metrics against a plain per-resample loop with scikit-learn on each group's rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import mean_absolute_error, roc_auc_score

from medprobe.evaluation.options import SubgroupOptions
from medprobe.evaluation.subgroups import TOO_SMALL, UNDEFINED, group_labels, subgroup_metrics
from medprobe.metrics.bootstrap import resample_weights, subject_resamples

B = 200


def _cohort(seed: int = 0, n_subjects: int = 60) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Predictions of a model that works better for scanner A than for scanner B; a third scanner with 3 subjects."""
    rng = np.random.default_rng(seed)
    subjects = np.repeat([f"sub-{i:03d}" for i in range(n_subjects)], 2)
    scanner = np.repeat(np.where(np.arange(n_subjects) < 3, "C", np.where(np.arange(n_subjects) % 2, "A", "B")), 2)
    y = np.repeat(rng.integers(0, 2, n_subjects), 2)
    strength = np.where(scanner == "A", 2.5, 0.5)
    p = 1 / (1 + np.exp(-(strength * (2 * y - 1) + rng.normal(0, 1, len(y)))))
    predictions = pd.DataFrame({"row": np.arange(len(y)), "subject_id": subjects, "y_true": y,
                                "y_pred": (p >= 0.5).astype(int), "proba_0": 1 - p, "proba_1": p})
    frame = pd.DataFrame({"scanner": scanner, "age": np.repeat(rng.uniform(20, 90, n_subjects), 2),
                          "sex": np.repeat(rng.choice(["F", "M", None], n_subjects, p=[0.45, 0.45, 0.1]), 2)})
    return predictions, frame


def _loop(predictions: pd.DataFrame, mask: np.ndarray, scorer, seed: int) -> np.ndarray:
    codes, drawn = subject_resamples(predictions["subject_id"].to_numpy(), B, seed)
    values = []
    for resample in range(B):
        w = resample_weights(codes, drawn[resample : resample + 1])[:, 0]
        group, weights = predictions[mask], w[mask]
        try:
            values.append(scorer(group, weights) if weights.sum() > 0 else np.nan)
        except ValueError:  # one class left in the group
            values.append(np.nan)
    return np.array(values)


def test_group_values_and_intervals_equal_a_plain_loop() -> None:
    predictions, frame = _cohort()
    result = subgroup_metrics(predictions, frame, "classification",
                              SubgroupOptions(columns=["scanner"], bootstrap=B), seed=3)
    rows = result.groups.set_index(["group", "metric"])

    def auroc(f: pd.DataFrame, w: np.ndarray | None) -> float:
        return roc_auc_score(f["y_true"], f["proba_1"], sample_weight=w)
    for group in ("A", "B"):
        mask = (frame["scanner"] == group).to_numpy()
        row = rows.loc[(group, "auroc")]
        assert row["value"] == pytest.approx(auroc(predictions[mask], None), abs=1e-12)
        loop = _loop(predictions, mask, auroc, seed=3)
        finite = loop[np.isfinite(loop)]
        assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(np.percentile(finite, [2.5, 97.5])), abs=1e-9)
        assert row["n_subjects"] == len(np.unique(predictions["subject_id"][mask]))

    small = result.groups[result.groups["group"] == "C"]
    assert (small["status"] == TOO_SMALL).all() and small["value"].isna().all() and (small["n_subjects"] == 3).all()

    gap = result.gaps.set_index("metric").loc["auroc"]
    assert (gap["best_group"], gap["worst_group"]) == ("A", "B")
    assert gap["gap"] == pytest.approx(rows.loc[("A", "auroc"), "value"] - rows.loc[("B", "auroc"), "value"])
    masks = [(frame["scanner"] == g).to_numpy() for g in ("A", "B")]
    difference = _loop(predictions, masks[0], auroc, 3) - _loop(predictions, masks[1], auroc, 3)
    finite = difference[np.isfinite(difference)]
    assert (gap["gap_ci_low"], gap["gap_ci_high"]) == pytest.approx(tuple(np.percentile(finite, [2.5, 97.5])),
                                                                    abs=1e-9)
    assert gap["gap_ci_low"] > 0  # scanner A really is better
    assert gap["groups_scored"] == 2


def test_errors_gap_is_worst_minus_best_and_bins_cut_numbers() -> None:
    rng = np.random.default_rng(1)
    n = 80
    age = rng.uniform(20, 90, n)
    y = rng.normal(50, 10, n)
    noise = np.where(age >= 60, 8.0, 2.0)
    predictions = pd.DataFrame({"row": range(n), "subject_id": [f"s{i}" for i in range(n)], "y_true": y,
                                "y_pred": y + rng.normal(0, 1, n) * noise})
    options = SubgroupOptions(bins={"age": [0, 60, 120]}, bootstrap=B)
    result = subgroup_metrics(predictions, pd.DataFrame({"age": age}), "regression", options)
    gap = result.gaps.set_index("metric").loc["mae"]
    assert (gap["best_group"], gap["worst_group"]) == ("0-60", "60-120")
    values = result.groups.set_index(["group", "metric"])["value"]
    assert gap["gap"] == pytest.approx(values[("60-120", "mae")] - values[("0-60", "mae")]) and gap["gap"] > 0
    old = age >= 60
    assert values[("60-120", "mae")] == pytest.approx(mean_absolute_error(y[old], predictions["y_pred"][old]))


def test_missing_values_are_counted_not_grouped_and_undefined_metrics_say_so() -> None:
    predictions, frame = _cohort(2)
    frame.loc[predictions["y_true"] == 1, "scanner"] = "positives-only"
    result = subgroup_metrics(predictions, frame, "classification",
                              SubgroupOptions(columns=["sex", "scanner"], bootstrap=50))
    assert set(result.groups.loc[result.groups["attribute"] == "sex", "group"]) == {"F", "M"}
    assert any("no 'sex' group" in note for note in result.notes)
    only = result.groups[(result.groups["group"] == "positives-only") & (result.groups["metric"] == "auroc")]
    assert only["status"].tolist() == [UNDEFINED]
    missing = subgroup_metrics(predictions, frame, "classification", SubgroupOptions(columns=["scanner_model"]))
    assert missing.groups.empty and "no column 'scanner_model'" in missing.notes[0]


def test_group_labels() -> None:
    values = pd.Series([19.9, 20, 39.99, 40, 64, 65, 120, None, "n/a"])
    labels = group_labels(values, [20, 40, 65, 120]).tolist()
    assert labels == [pd.NA, "20-40", "20-40", "40-65", "40-65", "65-120", pd.NA, pd.NA, pd.NA]
    assert group_labels(pd.Series([" F", "M", "", None])).tolist() == ["F", "M", pd.NA, pd.NA]


def test_options_refuse_bad_bins() -> None:
    with pytest.raises(ValueError, match="increasing"):
        SubgroupOptions(bins={"age": [40, 20]})
    with pytest.raises(ValueError, match="both in columns and in bins"):
        SubgroupOptions(columns=["age"], bins={"age": [0, 50, 100]})


def test_group_names_become_distinct_key_segments_and_identifiers_are_refused() -> None:
    from medprobe.tracking.naming import key_part

    values = ["<60", "≥60", "a+b", "a:b", "F", "Siemens/Skyra", "x" * 80]
    parts = [key_part(v) for v in values]
    assert len(set(parts)) == len(values) and key_part("F") == "F"
    assert all(len(p) <= 49 and all(c.isalnum() or c in "_-. " for c in p) for p in parts)
    for column in ("subject_id", "path", "split"):
        with pytest.raises(ValueError, match="cannot be subgroups"):
            SubgroupOptions(columns=[column])


def test_tied_groups_still_name_two_different_groups() -> None:
    predictions, frame = _cohort(3)
    frame["ward"] = np.where(np.arange(len(frame)) % 4 < 2, "east", "west")
    predictions["proba_1"] = 0.5 + 0.4 * (2 * predictions["y_true"] - 1)  # perfect everywhere: every group ties
    predictions["proba_0"] = 1 - predictions["proba_1"]
    gaps = subgroup_metrics(predictions, frame, "classification", SubgroupOptions(columns=["ward"], bootstrap=20)).gaps
    row = gaps.set_index("metric").loc["auroc"]
    assert {row["best_group"], row["worst_group"]} == {"east", "west"} and row["gap"] == 0
