"""The random-effects pooling equals statsmodels' combine_effects, and its intervals follow their formulas."""

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.meta_analysis import combine_effects

from medprobe.compare.pooling import pool_sites

SITES = [
    (np.array([0.80, 0.70, 0.90, 0.60]), np.array([0.10, 0.14, 0.12, 0.10])),  # heterogeneous
    (np.array([0.81, 0.79, 0.80]), np.array([0.05, 0.06, 0.04])),  # homogeneous: τ² = 0
    (np.array([4.1, 5.3, 3.2, 6.0, 4.4, 5.1]), np.array([0.3, 0.5, 0.2, 0.6, 0.4, 0.3])),  # MAE in years
]


@pytest.mark.parametrize("method", ["dl", "pm"])
@pytest.mark.parametrize(("y", "se"), SITES)
def test_pooled_statistics_equal_statsmodels(y: np.ndarray, se: np.ndarray, method: str) -> None:
    ours = pool_sites(y, se, method=method)  # type: ignore[arg-type]
    reference = combine_effects(y, se**2, method_re=method, use_t=False)
    frame = reference.summary_frame()
    if reference.tau2 < 0:  # statsmodels leaves DerSimonian-Laird's moment estimate negative; the method truncates
        assert ours.tau2 == 0.0 and ours.i2 == 0.0
        assert ours.estimate == pytest.approx(reference.mean_effect_fe, abs=1e-9)
        assert (ours.ci_low, ours.ci_high) == pytest.approx(
            (frame.loc["fixed effect", "ci_low"], frame.loc["fixed effect", "ci_upp"]), abs=1e-8)
        return
    assert ours.estimate == pytest.approx(reference.mean_effect_re, abs=1e-9)
    assert ours.tau2 == pytest.approx(reference.tau2, abs=1e-9)
    assert ours.q == pytest.approx(reference.q, rel=1e-9)
    assert ours.i2 == pytest.approx(max(0.0, reference.i2), abs=1e-9)
    assert (ours.ci_low, ours.ci_high) == pytest.approx(
        (frame.loc["random effect", "ci_low"], frame.loc["random effect", "ci_upp"]), abs=1e-8)
    # prediction interval (Higgins 2009), written out from its formula
    se_mu = frame.loc["random effect", "sd_eff"]
    half = stats.t.ppf(0.975, len(y) - 2) * math.sqrt(reference.tau2 + se_mu**2)
    assert (ours.pi_low, ours.pi_high) == pytest.approx((ours.estimate - half, ours.estimate + half), abs=1e-9)
    assert ours.q_pvalue == pytest.approx(stats.chi2.sf(reference.q, len(y) - 1))


def test_auroc_is_pooled_on_the_logit_scale_and_stays_inside_zero_and_one() -> None:
    auroc, se = np.array([0.95, 0.90, 0.97]), np.array([0.02, 0.04, 0.015])
    ours = pool_sites(auroc, se, logit=True)
    logit, logit_se = np.log(auroc / (1 - auroc)), se / (auroc * (1 - auroc))
    reference = combine_effects(logit, logit_se**2, method_re="dl", use_t=False)
    frame = reference.summary_frame()
    expit = lambda v: 1 / (1 + math.exp(-v))  # noqa: E731
    assert ours.estimate == pytest.approx(expit(reference.mean_effect_re))
    assert ours.ci_high == pytest.approx(expit(frame.loc["random effect", "ci_upp"]))
    assert 0 < ours.pi_low < ours.ci_low < ours.estimate < ours.ci_high < ours.pi_high < 1
    assert ours.scale == "logit"


def test_two_sites_have_no_prediction_interval_and_bad_inputs_are_refused() -> None:
    two = pool_sites(np.array([0.7, 0.8]), np.array([0.05, 0.05]))
    assert math.isnan(two.pi_low) and math.isnan(two.pi_high) and two.sites == 2
    with pytest.raises(ValueError, match="two or more"):
        pool_sites(np.array([0.7]), np.array([0.05]))
    with pytest.raises(ValueError, match="positive"):
        pool_sites(np.array([0.7, 0.8]), np.array([0.05, 0.0]))
