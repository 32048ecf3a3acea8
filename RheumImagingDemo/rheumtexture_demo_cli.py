"""The RheumTexture main job end to end on phantoms (what ``make demo`` runs).

Generate a strong-effect training cohort, train both bundles with the demo config
(five texture folds), score a held-out cohort (with an MRML scene per image), analyse
the scores and print where everything went. Phantoms, not patients.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from RheumImagingLib.console import configure
from RheumImagingLib.errors import InputError

from . import demo_arguments

TRAIN_PATIENTS = 60
TEST_PATIENTS = 40
# The contour networks train on 40 of the 60 annotated patients; quality control learns its limits on the other
# 20, the number its margins were chosen with (metacarpal_contour README, "Quality control": 8 held-out images made
# the limits too noisy, 3 of 40 held-out phantoms flagged). The texture folds train on all 60.
QC_HELD_OUT = 1 / 3


def run_demo(out: Path, train_patients: int = TRAIN_PATIENTS, test_patients: int = TEST_PATIENTS) -> dict:
    from RheumImagingLib.console import console_bars, stage_printer
    from RheumTextureLib.analyze_cli import analyze
    from RheumTextureLib.score_cli import score_images
    from RheumTextureLib.train_cli import train_bundles

    from .hand_phantom import generate_cohort

    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    step = stage_printer(started)
    step(f"phantom cohorts: {train_patients} training and {test_patients} held-out patients")
    train_csv = generate_cohort(out / "phantoms_train", train_patients, seed=1)
    test_csv = generate_cohort(out / "phantoms_test", test_patients, seed=2)
    step("training the contour bundle (localiser, Curve-GCN) and the five texture folds (demo config)")
    bars = console_bars()
    try:
        bundles = train_bundles(train_csv, out / "bundles", config="demo", progress=bars, qc_held_out=QC_HELD_OUT)
    finally:
        if bars:
            bars.close()
    step("scoring the held-out radiographs (one MRML scene each)")
    images = sorted((out / "phantoms_test" / "images").glob("*.dcm"))
    scores_csv = out / "scores" / "scores.csv"
    scored = score_images(images, scores_csv, bundle=bundles, cohort=test_csv, scene_dir=out / "scenes",
                          progress=bars is not None)
    step("cohort analysis")
    report = analyze(scores_csv, out / "report")
    lo, hi = report["auroc"]["ci95"]
    print(f"\nheld-out AUROC {report['auroc']['estimate']:.3f} (95% CI {lo:.3f}-{hi:.3f}, DeLong) on "
          f"{report['n_cases']} RA vs {report['n_controls']} control phantoms; "
          f"{scored['scored']} images scored in {time.time() - started:.0f} s\n"
          f"bundles:  {bundles} (training log {bundles / 'training.log'})\n"
          f"scores:   {scores_csv}\nscenes:   {out / 'scenes'} (one MRML scene per image)\n"
          f"report:   {out / 'report' / 'report.html'}", flush=True)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    demo_arguments.add(parser, TRAIN_PATIENTS, TEST_PATIENTS)
    args = parser.parse_args(argv)
    configure(args.verbose)
    try:
        run_demo(demo_arguments.run_folder(args, "rheumtexture"), args.train_patients, args.test_patients)
    except InputError as exc:  # e.g. too few patients for five folds: one line, as the commands say it
        print(f"rheumtexture demo: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
