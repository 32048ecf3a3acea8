"""Patient-level aggregation: one row per patient, so images or bones of one person never count twice."""

from __future__ import annotations

import pandas as pd

from ..errors import InputError

AGGREGATES = ("mean", "median", "max")


def per_patient(table: pd.DataFrame, value_columns, how: str = "mean", path=None, constant_columns=()) -> pd.DataFrame:
    """Aggregate ``value_columns`` per ``patient_id`` with ``how``; ``constant_columns`` must agree within a patient."""
    if how not in AGGREGATES:
        raise InputError(path, f"unknown aggregation {how!r}; choose one of {', '.join(AGGREGATES)}")
    grouped = table.groupby("patient_id", sort=True)
    for col in constant_columns:
        varying = grouped[col].nunique(dropna=False)
        bad = varying[varying > 1]
        if len(bad):
            raise InputError(path, f"column '{col}' differs between rows of patient {bad.index[0]!r}")
    out = grouped[list(value_columns)].agg(how)
    if constant_columns:
        out = grouped[list(constant_columns)].first().join(out)
    return out.reset_index()
