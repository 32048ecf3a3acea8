"""Reading and validating a scores CSV: every problem becomes an InputError naming column and row.

Rows are numbered as a spreadsheet user sees the data: the first data row under the header is row 1.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..errors import InputError


def read_scores(path, numeric=(), categorical: dict | None = None, required=(), may_be_empty=()) -> pd.DataFrame:
    """Read ``path``; check ``required`` columns exist, ``numeric`` cells are finite numbers, ``categorical``
    cells are among the allowed values, and ``label`` (if required) holds both classes 0 and 1.

    An empty cell in a ``may_be_empty`` column is a measurement that was not available (read as
    NaN, and the analyses that need it leave that row out); anything else must be a number."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a readable CSV table ({exc})") from None
    raw.columns = [c.strip() for c in raw.columns]
    missing = [c for c in required if c not in raw.columns]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(repr(c) for c in missing)}; found {', '.join(raw.columns)}")
    if raw.empty:
        raise InputError(path, "the table has no data rows")
    out = raw.copy()
    for col in numeric:
        values = []
        for i, cell in enumerate(raw[col], start=1):
            text = cell.strip()
            if not text and col in may_be_empty:
                values.append(math.nan)
                continue
            try:
                v = float(text)
            except ValueError:
                raise InputError(path, f"column '{col}', row {i}: {text!r} is not a number" if text
                                 else f"column '{col}', row {i}: empty cell") from None
            if not math.isfinite(v):
                raise InputError(path, f"column '{col}', row {i}: {text!r} is not a finite number (NaN/inf)")
            values.append(v)
        out[col] = values
    for col, allowed in (categorical or {}).items():
        for i, cell in enumerate(raw[col], start=1):
            if cell.strip() not in allowed:
                raise InputError(path, f"column '{col}', row {i}: {cell!r} is not one of {', '.join(allowed)}")
        out[col] = raw[col].str.strip()
    if "label" in out.columns and "label" in numeric:
        for i, v in enumerate(out["label"], start=1):
            if v not in (0.0, 1.0):
                raise InputError(path, f"column 'label', row {i}: {v:g} is not 0 or 1")
        out["label"] = out["label"].astype(int)
        classes = set(out["label"])
        if classes != {0, 1}:
            only = "cases (label 1)" if classes == {1} else "controls (label 0)"
            raise InputError(path, f"column 'label': only {only}; the analysis needs both classes")
    out["patient_id"] = raw["patient_id"].str.strip() if "patient_id" in raw.columns else range(1, len(raw) + 1)
    return out


def add_bootstrap_options(parser) -> None:
    """``--bootstrap N`` and ``--seed S`` of both analyze commands (see stats.bootstrap)."""
    from .bootstrap import N_RESAMPLES, SEED

    def positive(text: str) -> int:
        import argparse

        if not text.isdigit() or int(text) < 1:
            raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
        return int(text)

    parser.add_argument("--bootstrap", type=positive, default=N_RESAMPLES, metavar="N",
                        help=f"bootstrap resamples for percentile CIs and optimism (default {N_RESAMPLES})")
    parser.add_argument("--seed", type=int, default=SEED, help=f"bootstrap random seed (default {SEED})")
