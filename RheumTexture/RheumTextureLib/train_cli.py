"""``rheumtexture train``: train both bundles on a cohort into one ready-to-use bundle folder.

The folder holds ``metacarpal_contour/`` and ``ra_bone_texture/`` (each a copy of the
extension's bundle with its trained ``models/``), which ``rheumtexture score --bundle``
and the Slicer module take as they are, ``training.log`` (every iteration's loss) and
``oof_scores.csv``: each training patient's out-of-fold texture score (from the fold model
that did not see the patient), in the columns ``rheumtexture analyze`` reads.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from RheumImagingLib.bundle import default_bundle_root, sha256_of
from RheumImagingLib.cohort_folder import read_cohort
from RheumImagingLib.console import console_bars, log_file
from RheumImagingLib.errors import InputError
from RheumImagingLib.training_setup import require_new_folder

from .pipeline import CONTOUR_BUNDLE, TEXTURE_BUNDLE

log = logging.getLogger(__name__)
OOF_SCORES = "oof_scores.csv"
PREPARED = "prepared"  # each training image decoded once, shared by both bundles (annotations.prepare_image)
OOF_COLUMNS = ("patient_id", "label", "age", "sex", "score", "n_images", "in_training", "qc")


def train_bundles(cohort_csv, out_dir, config: str | None = "demo", source=None, seed: int = 0,
                  pretrained_trunk=None, progress=None, qc_held_out: float = 0.2) -> Path:
    """Train the contour bundle and the five texture folds from ``cohort_csv``; returns ``out_dir``.

    ``pretrained_trunk``: torchvision's ImageNet ResNet18 file (``resnet18-f37072fd.pth``) to start
    the texture trunk from, as the paper does; ``config=None`` is the full (paper) config.
    The full log (every iteration) goes to ``out_dir/training.log``; ``progress(stage, fraction)``
    hears about every iteration of each stage (localiser, Curve-GCN, one per texture fold).
    ``qc_held_out``: the share of annotated patients the contour networks do not train on, on which quality control
    learns its limits (the texture folds train on every patient).
    """
    from .contour import train_contour_bundle
    from .datalist import build_datalist
    from .texture import train_folds, write_training_list

    cohort_csv, out_dir = Path(cohort_csv), Path(out_dir)
    source = Path(source) if source else default_bundle_root()
    require_new_folder(out_dir)
    overrides = {}
    if pretrained_trunk:
        pretrained_trunk = Path(pretrained_trunk).resolve()
        if not pretrained_trunk.is_file():
            raise InputError(pretrained_trunk, "pretrained trunk file not found (torchvision's resnet18-f37072fd.pth, "
                                               "see monai_bundle/ra_bone_texture/large_files.yml)")
        overrides["pretrained_trunk"] = str(pretrained_trunk)
    out_dir.mkdir(parents=True, exist_ok=True)
    with log_file(out_dir / "training.log"):
        _log_trunk(pretrained_trunk, config)
        # the texture folds' datalist first: a cohort too small for 5 folds is refused before any training
        datalist = build_datalist(cohort_csv, out_dir / "texture_datalist.json", seed=seed,
                                  prepared_dir=out_dir / PREPARED)
        train_contour_bundle(source / CONTOUR_BUNDLE, cohort_csv, out_dir / CONTOUR_BUNDLE, config=config,
                             progress=progress, prepared_dir=out_dir / PREPARED, val_fraction=qc_held_out)
        texture = train_folds(source / TEXTURE_BUNDLE, datalist, out_dir / TEXTURE_BUNDLE, config=config,
                              overrides=overrides, progress=progress)
        write_training_list(texture, cohort_csv)
        write_oof_scores(texture, cohort_csv, out_dir / OOF_SCORES)
    return out_dir


def _log_trunk(pretrained_trunk, config) -> None:
    """Say in the log (and, for the paper's config, on the console) where the texture trunk starts from."""
    if pretrained_trunk:
        log.info("texture trunk initialised from ImageNet weights %s (sha256 %s)", pretrained_trunk,
                 sha256_of(pretrained_trunk))
    elif config is None:
        log.warning("full config without --pretrained-trunk: the texture trunk trains from random weights, not from "
                    "ImageNet weights as in the paper (give --pretrained-trunk resnet18-f37072fd.pth)")
    else:
        log.info("%s config: the texture trunk trains from random weights (no --pretrained-trunk)", config)


def write_oof_scores(texture_bundle, cohort_csv, out_csv) -> Path:
    """Per training patient: the mean over its images of the out-of-fold hand score (mean of bones)."""
    from .texture import out_of_fold_scores

    cohort = {r["patient_id"]: r for r in read_cohort(Path(cohort_csv), ("patient_id", "image", "label"))}
    images: dict = {}
    for row in out_of_fold_scores(texture_bundle):
        images.setdefault(row["patient_id"], {}).setdefault(row["image"], []).append(row["score"])
    out_csv = Path(out_csv)
    with open(out_csv, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=OOF_COLUMNS)
        writer.writeheader()
        for pid, by_image in images.items():
            hands = [np.mean(bones) for bones in by_image.values()]
            info = cohort.get(pid, {})
            writer.writerow({"patient_id": pid, "label": info.get("label", ""), "age": info.get("age", ""),
                             "sex": info.get("sex", ""), "score": f"{np.mean(hands):.6f}", "n_images": len(hands),
                             "in_training": "yes", "qc": "ok"})
    return out_csv


def run(args) -> int:
    if not 0 < args.qc_held_out < 1:
        raise InputError(None, f"--qc-held-out must lie between 0 and 1 (got {args.qc_held_out})")
    bars = console_bars()
    try:
        out = train_bundles(args.cohort, args.out, config=None if args.config == "full" else args.config,
                            source=args.source, pretrained_trunk=args.pretrained_trunk, progress=bars,
                            qc_held_out=args.qc_held_out)
    finally:
        if bars:
            bars.close()
    print(f"trained bundles in {out} (metacarpal_contour, ra_bone_texture); full log {out / 'training.log'}\n"
          f"out-of-fold scores of the training patients: {out / OOF_SCORES}\n"
          f"score with: rheumtexture score COHORT_FOLDER --bundle {out} --out scores.csv")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("train", help="train the contour bundle and the 5-fold texture ensemble",
                                   description=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--cohort", required=True, help="cohort.csv (patient_id,label,image,annotation,...): the "
                                                        "annotation column holds Slicer closed curves MC2, MC3, MC4 "
                                                        "(.mrk.json) or a segmentation / labelmap (as phantoms write)")
    parser.add_argument("--out", required=True, help="new folder for the trained bundles")
    parser.add_argument("--config", default="demo",
                        help="override config: demo (small, CPU minutes; default) or full (the paper's settings)")
    parser.add_argument("--pretrained-trunk", default=None, metavar="FILE",
                        help="torchvision's ImageNet ResNet18 weights (resnet18-f37072fd.pth) to start the texture "
                             "trunk from, as the paper does (recommended with --config full)")
    parser.add_argument("--source", default=None, help="bundle folder to start from (default: the extension's)")
    parser.add_argument("--qc-held-out", type=float, default=0.2, metavar="FRACTION",
                        help="share of annotated patients the contour networks do not train on, where quality "
                             "control learns its limits (default 0.2; aim for about 20 patients: fewer make the "
                             "limits noisy, see the metacarpal_contour bundle README)")
    parser.set_defaults(func=run)
