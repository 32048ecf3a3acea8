"""``rheumtexture phantom OUTDIR``: write a synthetic hand-radiograph cohort with ground truth."""

from __future__ import annotations

import argparse
import time

from .hand_phantom import ACQUISITION, ACQUISITIONS, DEFAULT_SIZE, DEFAULT_SPACING_MM, LATERALITIES, generate_cohort, parse_effect


def _effect(text: str) -> str:
    try:
        parse_effect(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _size(text: str) -> tuple[int, int]:
    try:
        rows, cols = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be ROWSxCOLS, e.g. 512x416, not {text!r}") from None
    return rows, cols


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "phantom", help="write synthetic hand radiographs (DICOM CR + Slicer markups of MC2-MC4 + truth JSON) and cohort.csv",
        description="Phantoms, not patients: posteroanterior hands whose metacarpal contours and texture effect are "
                    "known exactly, alternately RA and control.")
    parser.add_argument("outdir", help="output folder (created; cohort.csv and images/ go there)")
    parser.add_argument("--patients", type=int, default=20, help="number of patients (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0); same seed, same bytes")
    parser.add_argument("--effect", type=_effect, default="strong",
                        help="RA texture effect: strong (default, obvious), weak (texture AUROC ~0.7) or a number in [0, 1]")
    parser.add_argument("--size", type=_size, default=None, metavar="ROWSxCOLS",
                        help=f"image size in pixels (default {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}, or the "
                             f"{DEFAULT_SIZE[0] * DEFAULT_SPACING_MM:g} x {DEFAULT_SIZE[1] * DEFAULT_SPACING_MM:g} mm "
                             "field at --pixel-spacing); alone, the hand scales with it")
    parser.add_argument("--pixel-spacing", type=float, default=None, metavar="MM",
                        help=f"ImagerPixelSpacing in mm (default {DEFAULT_SPACING_MM} at 512 rows, scaled with --size); "
                             "anatomy and texture are in mm, so this changes the resolution, not the hand")
    spacing, blur = ACQUISITION["spacing_mm"], ACQUISITION["blur_sigma_mm"]
    radius, amount = ACQUISITION["unsharp_radius_mm"], ACQUISITION["unsharp_amount"]
    parser.add_argument("--acquisition", choices=ACQUISITIONS, default="fixed",
                        help=f"fixed (default: {DEFAULT_SPACING_MM} mm, no blur, no processing) or varied: per image, "
                             f"independent of the label, spacing {spacing[0]}-{spacing[1]} mm, detector blur sigma "
                             f"{blur[0]}-{blur[1]} mm and an unsharp mask (radius {radius[0]}-{radius[1]} mm, amount "
                             f"{amount[0]}-{amount[1]})")
    parser.add_argument("--laterality", choices=LATERALITIES, default="right",
                        help="right (default), left (mirrored, DICOM ImageLaterality L) or mixed (each hand at random, "
                             "independent of the label)")
    parser.add_argument("--photometric", choices=("MONOCHROME1", "MONOCHROME2"), default="MONOCHROME1",
                        help="DICOM photometric interpretation (default MONOCHROME1, as CR plates store it)")
    parser.add_argument("--legacy-png", action=argparse.BooleanOptionalAction, default=False,
                        help="also write each image as PNG beside its DICOM, for tools that read only PNG (e.g. the "
                             "bundles run alone); training and scoring read the DICOM (default off)")
    parser.add_argument("--overwrite", action="store_true", help="replace a cohort already in OUTDIR")
    parser.set_defaults(func=_run)


def _run(args) -> int:
    start = time.perf_counter()
    path = generate_cohort(args.outdir, args.patients, args.seed, args.effect, size=args.size,
                           pixel_spacing_mm=args.pixel_spacing, photometric=args.photometric,
                           acquisition=args.acquisition, laterality=args.laterality, overwrite=args.overwrite,
                           legacy_png=args.legacy_png)
    print(f"wrote {args.patients} phantom radiographs and {path} in {time.perf_counter() - start:.1f} s")
    return 0
