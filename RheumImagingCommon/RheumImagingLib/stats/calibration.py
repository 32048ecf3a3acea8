"""Calibration of predicted probabilities: calibration-in-the-large, calibration slope, Brier score, grouped plot.

Definitions (Steyerberg, Clinical Prediction Models, 2nd ed., 15.3; Van Calster et al. 2019, BMC Med 17:230):
intercept = a in ``logit P(y=1) = a + offset(logit p)`` (0 when the mean risk is right); slope = b in
``logit P(y=1) = a + b logit p`` (1 when the spread is right, < 1 when predictions are too extreme); both
statsmodels GLM (binomial, logit link) with Wald 95% CIs, as R ``glm(y ~ offset(lp), binomial)`` and
``glm(y ~ lp, binomial)`` with ``confint.default``. Brier = mean((p - y)^2). Probabilities of exactly 0 or 1
are moved in by ``EPS`` so that their logit is finite.
"""

from __future__ import annotations

import warnings

import numpy as np
import statsmodels.api as sm

from .proportions import wilson
from .roc import Z975

EPS = 1e-6


def _wald(res, i: int) -> dict:
    b, se = float(res.params[i]), float(res.bse[i])
    return {"estimate": b, "ci95": [b - Z975 * se, b + Z975 * se], "se": se}


def calibration(labels, probabilities) -> dict:
    """Calibration intercept, slope (Wald 95% CIs) and Brier score; ``unavailable`` with the reason when not estimable."""
    y = np.asarray(labels, dtype=float)
    p = np.asarray(probabilities, dtype=float)
    out = {"n": int(y.size), "brier": None,
           "method": "intercept: logistic model of the label with logit(score) as offset; slope: coefficient of "
                     "logit(score) in a logistic model with intercept; Wald 95% CIs; Brier = mean (score - label)^2"}
    if np.any((p < 0) | (p > 1)):
        return {**out, "intercept": None, "slope": None,
                "unavailable": "scores are not probabilities (outside 0-1): calibration is not defined"}
    out["brier"] = float(np.mean((p - y) ** 2))
    lp = np.log(np.clip(p, EPS, 1 - EPS) / (1 - np.clip(p, EPS, 1 - EPS)))
    ones = np.ones((y.size, 1))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            large = sm.GLM(y, ones, family=sm.families.Binomial(), offset=lp).fit()
            slope = sm.GLM(y, np.column_stack([ones, lp]), family=sm.families.Binomial()).fit()
    except (np.linalg.LinAlgError, ValueError) as exc:
        return {**out, "intercept": None, "slope": None, "unavailable": f"the logistic models could not be fitted ({exc})"}
    if np.ptp(lp) == 0 or not np.all(np.isfinite(slope.bse)) or np.any(slope.bse > 1e3):
        return {**out, "intercept": _wald(large, 0), "slope": None,
                "unavailable": "the slope is not estimable (constant scores or perfect separation)"}
    return {**out, "intercept": _wald(large, 0), "slope": _wald(slope, 1)}


def grouped(labels, probabilities, groups: int = 10) -> list[dict]:
    """Patients in ``groups`` equal-size groups by predicted risk (fewer when there are fewer than 5 per group):
    mean predicted, observed proportion and its Wilson 95% CI, for the calibration plot."""
    y = np.asarray(labels, dtype=int)
    p = np.asarray(probabilities, dtype=float)
    k = int(max(1, min(groups, y.size // 5)))
    order = np.argsort(p, kind="stable")
    rows = []
    for idx in np.array_split(order, k):
        events = int(y[idx].sum())
        rows.append({"n": int(idx.size), "mean_predicted": float(p[idx].mean()), "observed": events / idx.size,
                     "observed_ci95": list(wilson(events, idx.size))})
    return rows
