"""The arguments both ``make demo`` jobs share: where to write, and how many phantom patients."""

from __future__ import annotations

import time
from pathlib import Path


def add(parser, train_patients: int, test_patients: int) -> None:
    parser.add_argument("--out", required=True, type=Path, help="output folder (a new run folder is made inside)")
    parser.add_argument("--train-patients", type=int, default=train_patients)
    parser.add_argument("--test-patients", type=int, default=test_patients)
    parser.add_argument("-v", "--verbose", action="store_true", help="every detail (MONAI's per-iteration lines)")


def run_folder(args, name: str) -> Path:
    """A new ``<name>-<date>-<time>`` folder inside ``--out``, so that a second demo never overwrites the first."""
    return args.out / time.strftime(f"{name}-%Y%m%d-%H%M%S")
