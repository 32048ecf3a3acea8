"""Youden-optimal cut-offs stated as values of the measure (see the package docstring for pROC's midpoints)."""

from __future__ import annotations

import numpy as np

from .proportions import proportion


def youden_table(cases, controls, positive_if: str):
    """Every observed value c as a cut-off: (cut-offs ascending, true positives, true negatives, Youden's J)."""
    cases, controls = np.sort(np.asarray(cases, float)), np.sort(np.asarray(controls, float))
    cuts = np.unique(np.concatenate([cases, controls]))
    if positive_if == ">=":
        tp = cases.size - np.searchsorted(cases, cuts, "left")
        tn = np.searchsorted(controls, cuts, "left")
    else:
        tp = np.searchsorted(cases, cuts, "right")
        tn = controls.size - np.searchsorted(controls, cuts, "right")
    return cuts, tp, tn, tp / cases.size + tn / controls.size - 1


def best_index(j, positive_if: str) -> int:
    """The reported maximum of J among ties: the most sensitive cut-off (lowest for ">=", highest for "<=")."""
    tied = np.flatnonzero(np.isclose(j, j.max(), rtol=0, atol=1e-12))
    return int(tied[0] if positive_if == ">=" else tied[-1])


def _evaluate(labels, values, positive_if: str):
    labels = np.asarray(labels, dtype=int)
    values = np.asarray(values, dtype=float)
    cases, controls = values[labels == 1], values[labels == 0]
    if cases.size == 0 or controls.size == 0:
        raise ValueError("a cut-off needs at least one case and one control")
    cuts, tp, tn, j = youden_table(cases, controls, positive_if)
    tied = [(float(cuts[i]), int(tp[i]), int(tn[i]), float(j[i]))
            for i in np.flatnonzero(np.isclose(j, j.max(), rtol=0, atol=1e-12))]
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
