"""Pooling leaves nothing out silently: a site with a perfect score (bootstrap standard error 0) is pooled with a
stated continuity correction, a site without a standard error is named with its reason, and a metric fewer than
two sites give is a row without an estimate."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.meta_analysis import combine_effects

from medprobe.compare.pooling import pooled_table


def _runs(rows: list[tuple[str, float, float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"task": "t", "model": "m", "protocol": "linear", "site": site, "auroc": value,
                          "auroc_se": se, "mae": 1.0, "mae_se": 0.0, "n_test_subjects": n}
                         for site, value, se, n in rows])


def test_a_perfect_site_is_pooled_with_the_continuity_correction() -> None:
    runs = _runs([("a", 1.0, 0.0, 20), ("b", 0.8, 0.05, 30), ("c", 0.7, 0.04, 25)])
    row = pooled_table(runs, ("auroc",), ("dl",)).iloc[0]
    assert row["sites"] == 3 and row["left_out"] == ""
    assert row["corrected"] == "a (1.000 with standard error 0 on 20 subjects)"
    smoothed = (1.0 * 20 + 0.5) / 21
    p = np.array([smoothed, 0.8, 0.7])
    se = np.array([math.sqrt(smoothed * (1 - smoothed) / 20), 0.05, 0.04])
    reference = combine_effects(np.log(p / (1 - p)), (se / (p * (1 - p))) ** 2, method_re="dl", use_t=False)
    assert row["estimate"] == pytest.approx(1 / (1 + math.exp(-reference.mean_effect_re)))


def test_what_cannot_be_pooled_is_a_visible_row_with_its_reason() -> None:
    runs = _runs([("a", 0.9, float("nan"), 20), ("b", 0.8, 0.05, 30)])
    table = pooled_table(runs, ("auroc", "mae"), ("dl", "pm"))
    auroc = table[table["metric"] == "auroc"]
    assert len(auroc) == 2 and auroc["estimate"].isna().all() and (auroc["sites"] == 1).all()
    assert auroc["left_out"].iloc[0] == "a (no standard error logged);no estimate (fewer than two sites to pool: 1)"
    mae = table[table["metric"] == "mae"].iloc[0]  # an error with standard error 0 has no continuity correction
    assert mae["left_out"].startswith("a (standard error 0: no continuity correction for mae);b (standard error 0")
