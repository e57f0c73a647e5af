"""Reading the sites' subgroup and label-efficiency metrics back for the comparison, and the site as a subgroup."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from medprobe.compare.analyses import curve_table, robustness_ranking, robustness_table, subgroup_tables


def _runs() -> pd.DataFrame:
    base = {"model": "dino", "task": "lesion", "protocol": "linear"}
    return pd.DataFrame([
        {**base, "site": "a", "auroc": 0.90, "auroc_se": 0.03, "auroc_ci_low": 0.84, "auroc_ci_high": 0.95,
         "subgroup/sex/F/auroc": 0.93, "subgroup/sex/F/auroc_ci_low": 0.85, "subgroup/sex/F/auroc_ci_high": 0.99,
         "subgroup/sex/F/n_subjects": 40.0, "subgroup/sex/M/auroc": 0.85, "subgroup/sex/M/n_subjects": 38.0,
         "subgroup_gap/sex/auroc": 0.08, "subgroup_gap/sex/auroc_ci_low": -0.02, "subgroup_gap/sex/auroc_ci_high": 0.2,
         "label_efficiency/pct_10/auroc": 0.7, "label_efficiency/pct_10/auroc_ci_low": 0.6,
         "label_efficiency/pct_10/auroc_ci_high": 0.8, "label_efficiency/pct_10/n_subjects": 8.0,
         "label_efficiency/pct_100/auroc": 0.9, "label_efficiency/pct_100/n_subjects": 80.0},
        {**base, "site": "b", "auroc": 0.80, "auroc_se": 0.04, "auroc_ci_low": 0.72, "auroc_ci_high": 0.87},
    ])


def test_groups_and_gaps_are_read_back_with_the_site_as_an_attribute() -> None:
    groups, gaps = subgroup_tables(_runs(), ("auroc", "mae"))
    sex = groups[groups["attribute"] == "sex"].set_index("group")
    assert sex.loc["F", "value"] == 0.93 and sex.loc["F", "ci_low"] == 0.85 and sex.loc["F", "n_subjects"] == 40
    assert math.isnan(sex.loc["M", "ci_low"])
    gap = gaps[gaps["attribute"] == "sex"].iloc[0]
    assert (gap["site"], gap["best_group"], gap["worst_group"], gap["gap"]) == ("a", "F", "M", 0.08)

    sites = groups[groups["attribute"] == "site"]
    assert set(sites["group"]) == {"a", "b"} and set(sites["site"]) == {"all"}
    site_gap = gaps[gaps["attribute"] == "site"].iloc[0]
    assert (site_gap["best_group"], site_gap["worst_group"]) == ("a", "b")
    half = 1.959963984540054 * math.hypot(0.03, 0.04)  # independent sites: the standard errors add in quadrature
    assert (site_gap["gap_ci_low"], site_gap["gap_ci_high"]) == pytest.approx((0.1 - half, 0.1 + half))


def test_errors_rank_lower_as_better_across_sites() -> None:
    runs = pd.DataFrame([{"site": s, "model": "m", "task": "age", "protocol": "linear", "mae": v, "mae_se": 0.5}
                         for s, v in (("a", 4.0), ("b", 6.5), ("c", 5.0))])
    _, gaps = subgroup_tables(runs, ("mae",))
    gap = gaps.iloc[0]
    assert (gap["best_group"], gap["worst_group"], gap["gap"], gap["groups_scored"]) == ("a", "b", 2.5, 3)


def test_label_efficiency_points_are_read_back() -> None:
    curves = curve_table(_runs())
    assert curves[["site", "percent", "metric", "value", "n_subjects"]].values.tolist() == [
        ["a", 10.0, "auroc", 0.7, 8.0], ["a", 100.0, "auroc", 0.9, 80.0]]
    assert curves.iloc[0]["ci_low"] == 0.6 and math.isnan(curves.iloc[1]["ci_low"])


def test_robustness_runs_are_read_back_and_ranked() -> None:
    def robustness_run(site: str, model: str, clean: float, drop: float) -> dict:
        row = {"site": site, "model": model, "task": "lesion", "protocol": "robustness",
               "robustness/summary_drop": drop, "robustness/none/s0/auroc": clean,
               "robustness/none/s0/auroc_ci_low": clean - 0.1, "robustness/none/s0/cosine_median": 1.0}
        for severity in (1, 3):
            value = clean * (1 - drop * severity / 3)
            row |= {f"robustness/bias_field/s{severity}/auroc": value,
                    f"robustness/bias_field/s{severity}/auroc_drop": (clean - value) / clean,
                    f"robustness/bias_field/s{severity}/cosine_median": 1 - 0.01 * severity,
                    f"robustness/bias_field/s{severity}/cosine_p05": 1 - 0.02 * severity}
        return row

    linear = [{"site": s, "model": m, "task": "lesion", "protocol": "linear", "auroc": a}
              for s, m, a in (("a", "dino", 0.9), ("b", "dino", 0.8), ("a", "hand", 0.95), ("b", "hand", 0.95))]
    runs = pd.DataFrame([*linear, robustness_run("a", "dino", 0.9, 0.05), robustness_run("b", "dino", 0.8, 0.15),
                         robustness_run("a", "hand", 0.95, 0.4), robustness_run("b", "hand", 0.95, 0.3)])
    table = robustness_table(runs)
    assert len(table) == 4 * 3  # site × model runs, severities 0, 1, 3 of one metric
    row = table[(table["site"] == "a") & (table["model"] == "dino") & (table["severity"] == 3)].iloc[0]
    assert row["artefact"] == "bias_field" and row["value"] == pytest.approx(0.9 * 0.95)
    assert row["drop"] == pytest.approx(0.05) and (row["cosine_median"], row["cosine_p05"]) == (0.97, 0.94)
    clean = table[(table["severity"] == 0) & (table["site"] == "a") & (table["model"] == "dino")].iloc[0]
    assert (clean["artefact"], clean["value"], clean["ci_low"]) == ("none", 0.9, pytest.approx(0.8))

    ranking = robustness_ranking(runs).set_index("model")
    assert ranking.loc["dino", "mean_relative_drop"] == pytest.approx(0.10)
    assert ranking.loc["hand", "clean"] == pytest.approx(0.95) and ranking.loc["dino", "clean"] == pytest.approx(0.85)
    assert (ranking.loc["hand", "accuracy_rank"], ranking.loc["hand", "robustness_rank"]) == (1, 2)
    assert (ranking.loc["dino", "accuracy_rank"], ranking.loc["dino", "robustness_rank"]) == (2, 1)
