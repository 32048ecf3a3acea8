"""``rheumtexture train``: train both bundles on a cohort into one ready-to-use bundle folder.

The folder holds ``metacarpal_contour/`` and ``ra_bone_texture/`` (each a copy of the
extension's bundle with its trained ``models/``), which ``rheumtexture score --bundle``
and the Slicer module take as they are, and ``training.log`` (every iteration's loss).
"""

from __future__ import annotations

from pathlib import Path

from RheumImagingLib.bundle import default_bundle_root
from RheumImagingLib.console import console_bars, log_file
from RheumImagingLib.errors import InputError

from .pipeline import CONTOUR_BUNDLE, TEXTURE_BUNDLE


def train_bundles(cohort_csv, out_dir, config: str | None = "demo", source=None, seed: int = 0,
                  progress=None) -> Path:
    """Train the contour bundle and the five texture folds from ``cohort_csv``; returns ``out_dir``.

    The full log (every iteration) goes to ``out_dir/training.log``; ``progress(stage, fraction)``
    hears about every iteration of each stage (localiser, Curve-GCN, one per texture fold).
    """
    from .contour import train_contour_bundle
    from .datalist import build_datalist
    from .texture import train_folds

    cohort_csv, out_dir = Path(cohort_csv), Path(out_dir)
    source = Path(source) if source else default_bundle_root()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(out_dir, "output folder exists and is not empty (choose a new folder)")
    out_dir.mkdir(parents=True, exist_ok=True)
    with log_file(out_dir / "training.log"):
        train_contour_bundle(source / CONTOUR_BUNDLE, cohort_csv, out_dir / CONTOUR_BUNDLE, config=config,
                             progress=progress)
        datalist = build_datalist(cohort_csv, out_dir / "texture_datalist.json", seed=seed)
        train_folds(source / TEXTURE_BUNDLE, datalist, out_dir / TEXTURE_BUNDLE, config=config, progress=progress)
    return out_dir


def run(args) -> int:
    bars = console_bars()
    try:
        out = train_bundles(args.cohort, args.out, config=None if args.config == "full" else args.config,
                            source=args.source, progress=bars)
    finally:
        if bars:
            bars.close()
    print(f"trained bundles in {out} (metacarpal_contour, ra_bone_texture); full log {out / 'training.log'}\n"
          f"score with: rheumtexture score COHORT_FOLDER --bundle {out} --out scores.csv")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train the contour bundle and the 5-fold texture ensemble",
                                   description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--cohort", required=True, help="cohort.csv (patient_id,image,label,...) with ground-truth "
                                                        "contours in a JSON beside each image (as phantoms write)")
    parser.add_argument("--out", required=True, help="new folder for the trained bundles")
    parser.add_argument("--config", default="demo",
                        help="override config: demo (small, CPU minutes; default) or full (the paper's settings)")
    parser.add_argument("--source", default=None, help="bundle folder to start from (default: the extension's)")
    parser.set_defaults(func=run)
