"""Logistic regression odds ratios (statsmodels ``Logit``, Wald 95% CIs), with guards users can act on.

Events per variable (EPV) = the rarer outcome's count divided by the number of slopes. Below
``MIN_EPV`` (5) the fit is refused: such estimates are badly biased (Vittinghoff & McCulloch 2007);
below ``WARN_EPV`` (10, Peduzzi et al. 1996) a note is recorded in the result (the reports and the
command line show it; no Python warning, which would print a raw traceback-style line).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import statsmodels.api as sm
from statsmodels.tools.sm_exceptions import ConvergenceWarning, PerfectSeparationError, PerfectSeparationWarning

from .roc import Z975

MIN_EPV = 5.0
WARN_EPV = 10.0


class ModelError(ValueError):
    """The data cannot support the requested model (separation, too few events)."""


def fit_logit(y, X: pd.DataFrame, min_epv: float = MIN_EPV) -> dict:
    """Fit ``y ~ const + X``; return per-term odds ratio, Wald 95% CI and p, plus notes."""
    y = np.asarray(y, dtype=float)
    for name in X.columns:
        missing = np.flatnonzero(~np.isfinite(X[name].to_numpy(float)))
        if missing.size:
            raise ModelError(f"covariate '{name}' is missing in row {missing[0] + 1} ({missing.size} row(s) in all)")
        if np.ptp(X[name].to_numpy(float)) == 0:
            raise ModelError(f"'{name}' has the same value ({X[name].iloc[0]:g}) in every row: its odds ratio is not estimable")
    events = int(min(y.sum(), y.size - y.sum()))
    slopes = X.shape[1]
    epv = events / slopes if slopes else float("inf")
    notes = []
    if epv < min_epv:
        raise ModelError(f"too few events per variable: {events} events for {slopes} terms (EPV {epv:.1f} < {min_epv:g})")
    if epv < WARN_EPV:
        notes.append(f"low events per variable: EPV {epv:.1f} < {WARN_EPV:g}; odds ratios may be biased")
    design = sm.add_constant(X.astype(float), has_constant="add")
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerfectSeparationWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)  # judged below from mle_retvals, as a ModelError
        try:
            res = sm.Logit(y, design).fit(disp=0, maxiter=200)
        except (PerfectSeparationError, PerfectSeparationWarning, np.linalg.LinAlgError) as exc:
            raise ModelError(f"perfect or quasi-complete separation: the outcome is predicted exactly ({exc})") from None
    if not res.mle_retvals.get("converged", True) or not np.all(np.isfinite(res.bse)) or np.any(res.bse > 1e3):
        raise ModelError("perfect or quasi-complete separation: the fit did not converge to finite estimates")
    terms = {}
    for name in res.params.index:
        b, se = float(res.params[name]), float(res.bse[name])
        terms[name] = {"coef": b, "se": se, "odds_ratio": float(np.exp(b)),
                       "ci95": [float(np.exp(b - Z975 * se)), float(np.exp(b + Z975 * se))], "p": float(res.pvalues[name])}
    return {"terms": terms, "n": int(y.size), "events": events, "epv": epv, "notes": notes,
            "method": "statsmodels Logit (maximum likelihood), Wald 95% CI and p"}
