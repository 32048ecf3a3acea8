"""Group summaries and two-group tests (SciPy), with the method SciPy used written into the result."""

from __future__ import annotations

import numpy as np
from scipy import stats


def mean_ci(values) -> dict:
    """Mean with the t-distribution 95% CI."""
    x = np.asarray(values, dtype=float)
    m = float(x.mean())
    if x.size < 2:
        return {"mean": m, "ci95": [None, None], "n": int(x.size)}
    half = float(stats.t.ppf(0.975, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size))
    return {"mean": m, "ci95": [m - half, m + half], "n": int(x.size)}


def median_iqr(values) -> dict:
    """Median with the interquartile range (NumPy's default linear quantiles, R type 7)."""
    x = np.asarray(values, dtype=float)
    q1, med, q3 = np.percentile(x, [25, 50, 75])
    return {"median": float(med), "iqr": [float(q1), float(q3)], "n": int(x.size)}


def welch_t(cases, controls) -> dict:
    r = stats.ttest_ind(np.asarray(cases, float), np.asarray(controls, float), equal_var=False)
    return {"test": "Welch two-sample t-test (two-sided)", "t": float(r.statistic), "p": float(r.pvalue)}


def mann_whitney(cases, controls) -> dict:
    """Two-sided Mann-Whitney U (SciPy ``method='auto'``); U is the cases' statistic.

    SciPy's auto rule (``_mwu_choose_method``): asymptotic when both groups have more than 8 values or
    when there are ties, otherwise exact; asymptotic uses tie and continuity corrections.
    """
    x, y = np.asarray(cases, float), np.asarray(controls, float)
    r = stats.mannwhitneyu(x, y, alternative="two-sided", method="auto")
    ties = np.unique(np.concatenate([x, y])).size < x.size + y.size
    method = "exact" if not ((x.size > 8 and y.size > 8) or ties) else "asymptotic (tie- and continuity-corrected)"
    return {"test": "Mann-Whitney U (two-sided, SciPy)", "method": method, "U": float(r.statistic), "p": float(r.pvalue)}
