"""``sjogrenus train``: train the ultrasound segmentation bundle on a cohort (wraps train_segmentation)."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train", help="train the sjogren_us_segmentation bundle on a cohort with annotated images",
        description="Copies the bundle to --out and trains it there on the cohort's <site>_image files (DICOM, PNG, "
                    "JPEG, TIFF, read as scoring reads them) with their <site>_annotation: a Slicer segmentation "
                    "(.seg.nrrd, segments epithelium, submucosa, parenchyma, focus) or a labelmap (values 1-4). "
                    "Rows without annotation are left out. Also learns what plausible segmentations look like "
                    "(models/plausibility.json, for the qc column of 'sjogrenus score'). The source bundle is "
                    "unchanged.")
    parser.add_argument("--cohort", required=True, help="cohort.csv")
    parser.add_argument("--out", required=True, help="new folder for the trained bundle")
    parser.add_argument("--config", default="demo", help="override config ('demo': a few epochs on CPU; 'train': full recipe)")
    parser.add_argument("--bundle", default=None, help="source bundle folder (default: the extension's copy)")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    from RheumImagingLib.console import console_bars

    from .segmentation import BUNDLE_DIR, train_segmentation

    bars = console_bars()
    try:
        out = train_segmentation(args.bundle or BUNDLE_DIR, args.cohort, args.out, config=args.config, progress=bars)
    finally:
        if bars:
            bars.close()
    print(f"trained bundle in {out} (weights {out / 'models' / 'model.pt'}); full log {out / 'training.log'}\n"
          f"score with: sjogrenus score COHORT_FOLDER --bundle {out} --out scores.csv")
    return 0
