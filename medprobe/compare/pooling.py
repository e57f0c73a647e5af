"""Random-effects meta-analysis of one metric across sites: the pooled estimate a consortium can cite.

Sites are not exchangeable samples of one population, so each site's estimate y_i (with its bootstrap standard
error s_i, logged as `test/<metric>_se`) is modelled as y_i ~ N(θ_i, s_i²), θ_i ~ N(μ, τ²):

- Cochran's Q = Σ w_i (y_i − ȳ_FE)² with w_i = 1/s_i², on k − 1 degrees of freedom; I² = max(0, (Q − (k−1)) / Q).
- τ² by DerSimonian–Laird (moments: max(0, (Q − (k−1)) / (Σw − Σw²/Σw))) or Paule–Mandel (τ² such that the
  generalised Q with weights 1/(s_i² + τ²) equals k − 1).
- μ̂ = Σ w*_i y_i / Σ w*_i with w*_i = 1/(s_i² + τ²); 95 % CI μ̂ ± z·SE(μ̂) with SE = (Σ w*)^−½.
- 95 % prediction interval for a new site (Higgins, Thompson & Spiegelhalter 2009): μ̂ ± t_{k−2}·√(τ² + SE²),
  for k ≥ 3 sites.

AUROC (and other metrics bounded by 0 and 1 that are proportions: accuracy, balanced accuracy) is pooled on the
logit scale, its standard error carried over by the delta method (s / (p(1 − p))), and the results transformed
back. The statistics equal `statsmodels.stats.meta_analysis.combine_effects` (method_re "dl" / "pm", normal
intervals) on the same inputs, except that statsmodels leaves a negative DerSimonian–Laird τ² (and I²) as
computed where the method truncates them at 0 (then the estimate is the fixed-effect one);
tests/compare/test_pooling.py checks both.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy import optimize, stats

from medprobe.compare.table import test_subjects
from medprobe.metrics.catalogue import PROPORTIONS, standard_error

Method = Literal["dl", "pm"]
#: Metrics pooled on the logit scale (proportions in (0, 1)).
LOGIT_METRICS = PROPORTIONS
_EDGE = 1e-6


@dataclass(frozen=True)
class PooledEstimate:
    method: Method
    scale: Literal["logit", "identity"]
    sites: int
    estimate: float
    ci_low: float
    ci_high: float
    pi_low: float  # NaN with fewer than 3 sites
    pi_high: float
    tau2: float  # on the pooling scale
    i2: float
    q: float
    q_pvalue: float


def pool_sites(estimates: np.ndarray, standard_errors: np.ndarray, method: Method = "dl", logit: bool = False,
               level: float = 0.95) -> PooledEstimate:
    """The random-effects pooled estimate of k ≥ 2 site estimates with positive standard errors."""
    y = np.asarray(estimates, dtype=np.float64)
    se = np.asarray(standard_errors, dtype=np.float64)
    if len(y) < 2 or len(se) != len(y):
        raise ValueError(f"pooling needs two or more sites with one standard error each, got {len(y)}, {len(se)}")
    if not (np.all(np.isfinite(y)) and np.all(np.isfinite(se)) and np.all(se > 0)):
        raise ValueError("every site needs a finite estimate and a positive, finite standard error")
    if logit:
        p = np.clip(y, _EDGE, 1 - _EDGE)
        y, se = np.log(p / (1 - p)), se / (p * (1 - p))
    variance = se**2
    k = len(y)
    w = 1 / variance
    fixed = float(np.sum(w * y) / np.sum(w))
    q = float(np.sum(w * (y - fixed) ** 2))
    tau2 = _tau2_dl(w, q, k) if method == "dl" else _tau2_pm(y, variance, q, k)
    w_star = 1 / (variance + tau2)
    mu = float(np.sum(w_star * y) / np.sum(w_star))
    se_mu = math.sqrt(1 / float(np.sum(w_star)))
    z = float(stats.norm.ppf(0.5 + level / 2))
    ci = (mu - z * se_mu, mu + z * se_mu)
    if k >= 3:
        half = float(stats.t.ppf(0.5 + level / 2, k - 2)) * math.sqrt(tau2 + se_mu**2)
        pi = (mu - half, mu + half)
    else:
        pi = (math.nan, math.nan)
    back = _expit if logit else float
    return PooledEstimate(
        method=method, scale="logit" if logit else "identity", sites=k, estimate=back(mu),
        ci_low=back(ci[0]), ci_high=back(ci[1]), pi_low=back(pi[0]), pi_high=back(pi[1]), tau2=tau2,
        i2=max(0.0, (q - (k - 1)) / q) if q > 0 else 0.0, q=q, q_pvalue=float(stats.chi2.sf(q, k - 1)),
    )


def _tau2_dl(w: np.ndarray, q: float, k: int) -> float:
    return max(0.0, (q - (k - 1)) / float(np.sum(w) - np.sum(w**2) / np.sum(w)))


def _tau2_pm(y: np.ndarray, variance: np.ndarray, q: float, k: int) -> float:
    """The root of the generalised Q(τ²) = k − 1 (Q decreases in τ²); 0 when Q(0) is already below it."""
    if q <= k - 1:
        return 0.0

    def excess(tau2: float) -> float:
        w = 1 / (variance + tau2)
        mu = np.sum(w * y) / np.sum(w)
        return float(np.sum(w * (y - mu) ** 2)) - (k - 1)

    upper = max(float(np.var(y, ddof=1)), 1e-12)
    while excess(upper) > 0:
        upper *= 2
    return float(optimize.brentq(excess, 0.0, upper, xtol=1e-14, rtol=1e-12))


def _expit(value: float) -> float:
    return float("nan") if math.isnan(value) else 1 / (1 + math.exp(-value))


#: The columns of `pooled.csv`: the pooled estimate per task × model × protocol × metric × method. `corrected`
#: names the sites pooled with the continuity correction (`site_standard_errors`), `left_out` every site that was
#: not pooled, each with its reason; a metric fewer than two sites can give is one row with no estimate.
POOLED_COLUMNS = ("task", "model", "protocol", "metric", "method", "scale", "sites", "estimate", "ci_low", "ci_high",
                  "pi_low", "pi_high", "tau2", "i2", "q", "q_pvalue", "corrected", "left_out")


def pooled_table(runs: pd.DataFrame, metrics: tuple[str, ...], methods: tuple[Method, ...] = ("dl", "pm")
                 ) -> pd.DataFrame:
    """Pool every `metric` of every task × model × protocol across the sites that logged it, per method (see
    `site_standard_errors` for a site whose bootstrap standard error is 0); nothing is dropped without a word."""
    rows = []
    for (task, model, protocol), group in runs.groupby(["task", "model", "protocol"], sort=True):
        for metric in metrics:
            if metric not in group or group[metric].isna().all():
                continue
            y, se, corrected, left_out = site_standard_errors(group, metric)
            key = {"task": task, "model": model, "protocol": protocol, "metric": metric}
            notes = {"corrected": ";".join(corrected), "left_out": ";".join(left_out)}
            for method in methods:
                if len(y) < 2:  # a visible gap: the row, with no estimate and the reason
                    gap = ";".join([*left_out, f"no estimate (fewer than two sites to pool: {len(y)})"])
                    rows.append({**key, "method": method, "sites": len(y), **notes, "left_out": gap})
                    continue
                pooled = pool_sites(y, se, method, logit=metric in LOGIT_METRICS)
                rows.append({**key, **asdict(pooled), **notes})
    return pd.DataFrame(rows, columns=list(POOLED_COLUMNS))


def site_standard_errors(group: pd.DataFrame, metric: str) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """Each site's estimate and standard error for pooling, the sites given a continuity correction, and the sites
    left out with their reason.

    A site whose bootstrap standard error is 0 (every resample gave the same value: an AUROC of 1.000 on a small
    test set) cannot be weighted by 1/s². For a proportion it is pooled at p̃ = (p·n + ½)/(n + 1) with the standard
    error of a proportion, √(p̃(1 − p̃)/n), n its test subjects (test rows for a run that does not log them); any
    other metric of such a site is left out. A site with no standard error logged (bootstrap 0, or few-shot, whose
    interval is over episodes) is left out too."""
    se_column = standard_error(metric)
    values = group[metric].to_numpy(float)
    errors = group[se_column].to_numpy(float) if se_column in group else np.full(len(group), np.nan)
    n = test_subjects(group).to_numpy(float)
    y, se, corrected, left_out = [], [], [], []
    for site, value, error, count in zip(group["site"].astype(str), values, errors, n, strict=True):
        if not np.isfinite(value):
            left_out.append(f"{site} (no value)")
        elif np.isfinite(error) and error > 0:
            y.append(value)
            se.append(error)
        elif not np.isfinite(error):
            left_out.append(f"{site} (no standard error logged)")
        elif metric in LOGIT_METRICS and np.isfinite(count) and count >= 1:
            smoothed = (value * count + 0.5) / (count + 1)
            y.append(smoothed)
            se.append(math.sqrt(smoothed * (1 - smoothed) / count))
            corrected.append(f"{site} ({value:.3f} with standard error 0 on {count:.0f} subjects)")
        else:
            left_out.append(f"{site} (standard error 0: no continuity correction for {metric})")
    return np.asarray(y), np.asarray(se), corrected, left_out
