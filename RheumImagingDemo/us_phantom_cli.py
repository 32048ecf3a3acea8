"""``sjogrenus phantom OUTDIR``: write a synthetic salivary-gland/buccal-mucosa ultrasound cohort with ground truth."""

from __future__ import annotations

import argparse
import time

from .us_phantom import generate_cohort


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "phantom", help="write synthetic ultrasound studies (DICOM US + Slicer segmentations + truth JSON) and cohort.csv",
        description="Phantoms, not patients: per patient one buccal-mucosa image (epithelium thickness and "
                    "echogenicity known) and four major-gland images (grade 0-4 known), alternately pSS and control.")
    parser.add_argument("outdir", help="output folder (created; cohort.csv and images/ go there)")
    parser.add_argument("--patients", type=int, default=20, help="number of patients (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same bytes")
    parser.add_argument("--acquisition", choices=("fixed", "varied"), default="fixed",
                        help="scanner settings: 'fixed' (default; one gain, 45 dB dynamic range, one probe) or "
                             "'varied' (per image, independent of the label: gain +-10 dB, dynamic range 40-70 dB, "
                             "transducer frequency x0.75-1.25, speckle reduction, pixel spacing x0.95-1.2)")
    parser.add_argument("--legacy-png", action=argparse.BooleanOptionalAction, default=False,
                        help="also write each image as PNG and its labels as <stem>_labels.png, for tools that read "
                             "only PNG; training and scoring read the DICOM and .seg.nrrd (default off)")
    parser.add_argument("--overwrite", action="store_true", help="replace a cohort already in OUTDIR")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    start = time.perf_counter()
    path = generate_cohort(args.outdir, args.patients, args.seed, overwrite=args.overwrite,
                          acquisition=args.acquisition, legacy_png=args.legacy_png)
    print(f"wrote {args.patients} phantom ultrasound studies (5 images each) and {path} "
          f"in {time.perf_counter() - start:.1f} s")
    return 0
