"""Reader agreement: ICC(A,1) as R ``irr::icc``, Bland-Altman limits, weighted kappa as ``irr::kappa2``.

Input is long format (``subject,reader,measure,value``; the software may be one of the readers). Each
measure is analysed on the subjects every reader rated (listwise, as irr's ``na.omit``); the others are
counted in ``n_subjects_incomplete``.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import InputError
from .roc import Z975
from .table import read_scores

COLUMNS = ("subject", "reader", "measure", "value")


def read_readings(path) -> pd.DataFrame:
    """Read and check a readings CSV; every problem is an InputError naming the file, row and column."""
    table = read_scores(path, numeric=("value",), required=COLUMNS)
    out = table[list(COLUMNS)].copy()
    for col in ("subject", "reader", "measure"):
        out[col] = out[col].str.strip()
        empty = np.flatnonzero(out[col] == "")
        if empty.size:
            raise InputError(path, f"column '{col}', row {empty[0] + 1}: empty cell")
    dup = out.duplicated(["subject", "reader", "measure"], keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        r = out.iloc[i]
        raise InputError(path, f"row {i + 1}: reader {r.reader!r} already rated subject {r.subject!r} on measure "
                               f"{r.measure!r}; give one value per subject, reader and measure")
    for measure, rows in out.groupby("measure", sort=False):
        if rows["reader"].nunique() < 2:
            raise InputError(path, f"column 'reader': measure {measure!r} has one reader ({rows['reader'].iloc[0]!r}); "
                                   "agreement needs two or more")
    return out


def wide(readings: pd.DataFrame, measure: str) -> tuple[pd.DataFrame, int]:
    """Subjects x readers (readers in order of first appearance), complete subjects only; and how many were dropped."""
    rows = readings[readings["measure"] == measure]
    readers = list(dict.fromkeys(rows["reader"]))
    table = rows.pivot(index="subject", columns="reader", values="value")[readers]
    complete = table.dropna()
    return complete, int(len(table) - len(complete))


def icc_a1(ratings) -> dict:
    """ICC(A,1): two-way random effects, absolute agreement, single rater (McGraw & Wong 1996; Shrout & Fleiss
    1979 ICC(2,1)), with irr's F test against r0 = 0 and McGraw & Wong's F-based 95% CI (irr R/icc.R)."""
    x = np.asarray(ratings, dtype=float)
    ns, nr = x.shape
    if ns < 2:
        raise ValueError("an ICC needs at least two subjects rated by every reader")
    grand = x.mean()
    ms_r = nr * np.sum((x.mean(axis=1) - grand) ** 2) / (ns - 1)
    ms_c = ns * np.sum((x.mean(axis=0) - grand) ** 2) / (nr - 1)
    ms_e = (np.sum((x - grand) ** 2) - ms_r * (ns - 1) - ms_c * (nr - 1)) / ((ns - 1) * (nr - 1))
    out = {"method": "ICC(A,1): two-way random, absolute agreement, single rater (as irr::icc); "
                     "95% CI after McGraw & Wong 1996", "subjects": ns, "raters": nr}
    denom = ms_r + (nr - 1) * ms_e + nr / ns * (ms_c - ms_e)
    if ms_e <= 0 or denom <= 0:
        return {**out, "estimate": 1.0 if ms_e == 0 and ms_c == 0 else None, "ci95": None, "F": None, "df": None,
                "p": None, "undefined": "no residual variance (readers agree exactly or differ by a constant)"}
    icc = (ms_r - ms_e) / denom
    f_value = ms_r / ms_e  # irr with r0 = 0: a = 0, b = 1
    a = nr * icc / (ns * (1 - icc))
    b = 1 + nr * icc * (ns - 1) / (ns * (1 - icc))
    v = (a * ms_c + b * ms_e) ** 2 / ((a * ms_c) ** 2 / (nr - 1) + (b * ms_e) ** 2 / ((ns - 1) * (nr - 1)))
    fl = stats.f.ppf(0.975, ns - 1, v)
    fu = stats.f.ppf(0.975, v, ns - 1)
    lower = ns * (ms_r - fl * ms_e) / (fl * (nr * ms_c + (nr * ns - nr - ns) * ms_e) + ns * ms_r)
    upper = ns * (fu * ms_r - ms_e) / (nr * ms_c + (nr * ns - nr - ns) * ms_e + ns * fu * ms_r)
    # one-sided F test of ICC > 0 (McGraw & Wong; irr 0.84 prints p = 0.0543 for its anxiety data); irr 0.84.1
    # doubles this tail (R/icc.R: pf(..., lower.tail=FALSE)*2)
    p = float(stats.f.sf(f_value, ns - 1, v))
    return {**out, "estimate": float(icc), "ci95": [float(lower), float(upper)], "F": float(f_value),
            "df": [ns - 1, float(v)], "p": p}


def bland_altman(first, second) -> dict:
    """Bias (mean of second - first) and 95% limits of agreement bias +- 1.96 SD (SD with n - 1; Bland & Altman 1986)."""
    d = np.asarray(second, dtype=float) - np.asarray(first, dtype=float)
    bias = float(d.mean())
    sd = float(d.std(ddof=1)) if d.size > 1 else float("nan")
    return {"bias": bias, "sd": sd, "loa": [bias - Z975 * sd, bias + Z975 * sd], "n": int(d.size)}


def weighted_kappa(first, second) -> dict:
    """Cohen's kappa with linear and quadratic weights, as ``irr::kappa2(weight="equal"/"squared")``.

    As irr, the categories are the distinct values either reader gave, sorted, and weighted by their rank
    (equally spaced): a value no reader used is not a category. Percent agreement counts exact matches.
    """
    r1, r2 = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    levels = np.unique(np.concatenate([r1, r2]))
    n, nc = r1.size, levels.size
    out = {"categories": [float(v) for v in levels], "n": int(n),
           "percent_agreement": float(100 * np.mean(r1 == r2)),
           "method": "Cohen's weighted kappa (as irr::kappa2; categories = observed values, equally spaced)"}
    if nc < 2:
        return {**out, "kappa_linear": None, "kappa_quadratic": None,
                "undefined": "both readers gave one and the same value to every subject"}
    i1, i2 = np.searchsorted(levels, r1), np.searchsorted(levels, r2)
    table = np.zeros((nc, nc))
    np.add.at(table, (i1, i2), 1)
    dist = np.abs(np.arange(nc)[:, None] - np.arange(nc)[None, :]) / (nc - 1)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / n
    for name, w in (("kappa_linear", 1 - dist), ("kappa_quadratic", 1 - dist ** 2)):
        po, pe = np.sum(table * w) / n, np.sum(expected * w) / n
        out[name] = float((po - pe) / (1 - pe))
    return out


def analyse(readings: pd.DataFrame, ordinal=()) -> dict:
    """``measures: {NAME: {...}}`` for every measure in ``readings``; ``ordinal`` names get kappa instead of ICC."""
    measures = {}
    for measure in dict.fromkeys(readings["measure"]):
        table, dropped = wide(readings, measure)
        readers = list(table.columns)
        entry = {"n_subjects": int(len(table)), "readers": readers, "n_subjects_incomplete": dropped}
        if len(table) < 2:
            entry["undefined"] = "fewer than two subjects rated by every reader"
        elif measure in ordinal:
            entry["type"] = "ordinal"
            if len(readers) == 2:
                entry.update(weighted_kappa(table[readers[0]], table[readers[1]]))
            else:
                entry["pairs"] = {f"{a} vs {b}": weighted_kappa(table[a], table[b]) for a, b in combinations(readers, 2)}
                entry["note"] = "more than two readers: Cohen's kappa for each pair of readers"
        else:
            entry["type"] = "continuous"
            entry["icc"] = icc_a1(table.to_numpy())
            if len(readers) == 2:
                entry["bland_altman"] = {**bland_altman(table[readers[0]], table[readers[1]]),
                                         "difference": f"{readers[1]} - {readers[0]}"}
            else:
                entry["bland_altman"] = {"pairs": {f"{b} - {a}": bland_altman(table[a], table[b])
                                                   for a, b in combinations(readers, 2)},
                                         "note": "more than two readers: limits of agreement for each pair of readers"}
        measures[measure] = entry
    return measures
