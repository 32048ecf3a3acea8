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

TRAIN_PATIENTS = 40
TEST_PATIENTS = 40


def run_demo(out: Path, train_patients: int = TRAIN_PATIENTS, test_patients: int = TEST_PATIENTS) -> dict:
    from .analyze_cli import analyze
    from .phantom import generate_cohort
    from .score_cli import score_images
    from .train import train_bundles

    started = time.time()
    out.mkdir(parents=True, exist_ok=True)
    step = _stepper(started)
    step(f"phantom cohorts: {train_patients} training and {test_patients} held-out patients")
    train_csv = generate_cohort(out / "phantoms_train", train_patients, seed=1)
    test_csv = generate_cohort(out / "phantoms_test", test_patients, seed=2)
    step("training the contour bundle and the five texture folds (demo config)")
    bundles = train_bundles(train_csv, out / "bundles", config="demo")
    step("scoring the held-out radiographs")
    images = sorted((out / "phantoms_test" / "images").glob("*.dcm"))
    scores_csv = out / "scores" / "scores.csv"
    scored = score_images(images, scores_csv, bundle=bundles, cohort=test_csv, scene_dir=out / "scenes", progress=False)
    step("cohort analysis")
    report = analyze(scores_csv, out / "report")
    step("done")
    print(f"\nbundles:  {bundles}\nscores:   {scores_csv}\nscenes:   {out / 'scenes'} "
          f"(one MRML scene per image)\nreport:   {out / 'report' / 'report.html'}\n"
          f"held-out AUROC {report['auroc']['estimate']:.3f} "
          f"(95% CI {report['auroc']['ci95'][0]:.3f}-{report['auroc']['ci95'][1]:.3f}) on "
          f"{report['n_cases']} RA vs {report['n_controls']} control phantoms; "
          f"{scored['scored']} images scored in {time.time() - started:.0f} s")
    return report


def _stepper(started: float):
    def step(message: str) -> None:
        print(f"[{time.time() - started:6.0f} s] {message}", flush=True)

    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, type=Path, help="output folder (a new run folder is made inside)")
    parser.add_argument("--train-patients", type=int, default=TRAIN_PATIENTS)
    parser.add_argument("--test-patients", type=int, default=TEST_PATIENTS)
    args = parser.parse_args(argv)
    run_dir = args.out / time.strftime("rheumtexture-%Y%m%d-%H%M%S")
    run_demo(run_dir, args.train_patients, args.test_patients)
    return 0


if __name__ == "__main__":
    sys.exit(main())
