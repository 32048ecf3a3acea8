"""A cohort folder: ``cohort.csv`` + ``images/``, written by the phantom generators and read by
training and scoring.

Why one home: both phantom generators must refuse to replace a user's cohort, write the
table atomically (a crash never leaves a half cohort.csv), and alternate cases and
controls with the same patient numbering; every reader must name the file and the missing
column the same way.
"""

from __future__ import annotations

import contextlib
import csv
import os
from pathlib import Path
from typing import Iterator

from .errors import InputError


@contextlib.contextmanager
def cohort_writer(outdir: str | os.PathLike, columns: list[str], *, overwrite: bool = False) -> Iterator[tuple[Path, csv.writer]]:
    """Yield (images folder, csv writer with the header written); cohort.csv appears only on success."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise InputError(outdir, "exists and is not a folder")
    csv_path = outdir / "cohort.csv"
    images = outdir / "images"
    if not overwrite and (csv_path.exists() or (images.is_dir() and any(images.iterdir()))):
        raise InputError(outdir, "already holds a phantom cohort; pass --overwrite to replace it")
    images.mkdir(parents=True, exist_ok=True)
    partial = outdir / "cohort.csv.partial"
    try:
        with open(partial, "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(columns)
            yield images, writer
        os.replace(partial, csv_path)
    finally:
        partial.unlink(missing_ok=True)


def alternating_patients(n_patients: int, case_prefix: str) -> Iterator[tuple[int, int, str]]:
    """(index, label, patient id): cases (label 1) first, then alternating; ids count per group."""
    counters = {0: 0, 1: 0}
    for i in range(n_patients):
        label = 1 if i % 2 == 0 else 0
        counters[label] += 1
        yield i, label, f"{case_prefix if label else 'HC'}{counters[label]:04d}"


def read_cohort(path: str | os.PathLike, required: tuple[str, ...] = ("patient_id",),
                any_of: tuple[str, ...] = ()) -> list[dict[str, str]]:
    """The rows of a cohort.csv; ``required`` columns must all be there, and one of ``any_of``
    at least (image paths in the rows stay relative to the file's folder)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "cohort file not found")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        rows = list(reader)
    missing = [c for c in required if c not in columns]
    if missing:
        raise InputError(path, f"missing column(s) {', '.join(missing)}")
    if any_of and not any(c in columns for c in any_of):
        raise InputError(path, f"needs at least one of the columns {', '.join(any_of)}")
    if not rows:
        raise InputError(path, "no rows under the header")
    return rows
