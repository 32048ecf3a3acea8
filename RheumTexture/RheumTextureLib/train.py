"""``rheumtexture train``: train both bundles on a cohort into one ready-to-use bundle folder.

The folder holds ``metacarpal_contour/`` and ``ra_bone_texture/`` (each a copy of the
extension's bundle with its trained ``models/``), which ``rheumtexture score --bundle``
and the Slicer module take as they are.
"""

from __future__ import annotations

from pathlib import Path

from RheumImagingLib.bundle import default_bundle_root
from RheumImagingLib.errors import InputError

from .pipeline import CONTOUR_BUNDLE, TEXTURE_BUNDLE


def train_bundles(cohort_csv, out_dir, config: str | None = "demo", source=None, seed: int = 0) -> Path:
    """Train the contour bundle and the five texture folds from ``cohort_csv``; returns ``out_dir``."""
    from .contour import train_contour_bundle
    from .datalist import build_datalist
    from .texture import train_folds

    cohort_csv, out_dir = Path(cohort_csv), Path(out_dir)
    source = Path(source) if source else default_bundle_root()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(out_dir, "output folder exists and is not empty (choose a new folder)")
    out_dir.mkdir(parents=True, exist_ok=True)
    train_contour_bundle(source / CONTOUR_BUNDLE, cohort_csv, out_dir / CONTOUR_BUNDLE, config=config)
    datalist = build_datalist(cohort_csv, out_dir / "texture_datalist.json", seed=seed)
    train_folds(source / TEXTURE_BUNDLE, datalist, out_dir / TEXTURE_BUNDLE, config=config)
    return out_dir


def run(args) -> int:
    out = train_bundles(args.cohort, args.out, config=None if args.config == "full" else args.config,
                        source=args.source)
    print(f"trained bundles in {out}; score with: rheumtexture score IMAGES... --bundle {out} --out scores.csv")
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
