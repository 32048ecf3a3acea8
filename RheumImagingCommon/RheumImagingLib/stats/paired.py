"""Paired comparison of two binary classifications on the same subjects: McNemar's test as R's ``mcnemar.test``."""

from __future__ import annotations

import numpy as np
from scipy import stats


def mcnemar(first, second) -> dict:
    """McNemar's chi-squared test with continuity correction, as R ``mcnemar.test(x, correct = TRUE)``.

    ``first``/``second``: 0/1 (or bool) classifications of the same subjects. ``discordant`` is [b, c]:
    b = positive by ``first`` only, c = positive by ``second`` only. R's rules: the statistic is
    ``(|b - c| - 1)^2 / (b + c)`` on 1 df, but the correction is applied only when b != c (with b == c
    the statistic is 0 and p = 1); with no discordant pair R returns NaN, here statistic and p are None
    and ``undefined`` says why.
    """
    a, b_ = np.asarray(first, dtype=bool), np.asarray(second, dtype=bool)
    if a.shape != b_.shape:
        raise ValueError("McNemar's test needs the two classifications of the same subjects")
    b, c = int((a & ~b_).sum()), int((~a & b_).sum())
    out = {"test": "McNemar's chi-squared test with continuity correction (as R mcnemar.test)",
           "discordant": [b, c], "n": int(a.size), "df": 1}
    if b + c == 0:
        return {**out, "statistic": None, "p": None, "undefined": "no discordant pairs (R returns NaN)"}
    diff = abs(b - c) - 1 if b != c else 0
    statistic = diff * diff / (b + c)
    return {**out, "statistic": float(statistic), "p": float(stats.chi2.sf(statistic, 1))}
