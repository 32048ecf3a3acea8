"""Youden-optimal cut-offs stated as values of the measure (see the package docstring for pROC's midpoints)."""

from __future__ import annotations

import numpy as np

from .proportions import proportion


def _evaluate(labels, values, positive_if: str):
    labels = np.asarray(labels, dtype=int)
    values = np.asarray(values, dtype=float)
    cases, controls = values[labels == 1], values[labels == 0]
    if cases.size == 0 or controls.size == 0:
        raise ValueError("a cut-off needs at least one case and one control")
    rows = []
    for c in np.unique(values):
        if positive_if == ">=":
            tp, tn = int((cases >= c).sum()), int((controls < c).sum())
        else:
            tp, tn = int((cases <= c).sum()), int((controls > c).sum())
        j = tp / cases.size + tn / controls.size - 1
        rows.append((float(c), tp, tn, j))
    best = max(r[3] for r in rows)
    tied = [r for r in rows if np.isclose(r[3], best, rtol=0, atol=1e-12)]
    return tied, cases.size, controls.size


def _result(tied, n_cases, n_controls, rule: str, pick):
    c, tp, tn, j = pick(tied)
    return {"cutoff": c, "rule": rule.format(c=c), "youden_j": j,
            "sensitivity": proportion(tp, n_cases), "specificity": proportion(tn, n_controls),
            "tied_cutoffs": [r[0] for r in tied]}


def youden_at_least(labels, scores) -> dict:
    """Cut-off c maximising Youden's J for "positive if score >= c" (integer scores; pROC threshold c - 0.5).

    Among tied maxima the lowest c (most sensitive) is reported; all are listed in ``tied_cutoffs``.
    """
    tied, n1, n0 = _evaluate(labels, scores, ">=")
    return _result(tied, n1, n0, "positive if score >= {c:g}", lambda t: t[0])


def youden_at_most(labels, values) -> dict:
    """Cut-off t maximising Youden's J for "positive if value <= t" (low values abnormal, pROC direction '>').

    Among tied maxima the highest t (most sensitive) is reported; all are listed in ``tied_cutoffs``.
    """
    tied, n1, n0 = _evaluate(labels, values, "<=")
    return _result(tied, n1, n0, "positive if value <= {c:g}", lambda t: t[-1])
