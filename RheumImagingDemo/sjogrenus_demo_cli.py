"""The SjogrenUS main job end to end on phantoms (part of ``make demo``).

Generate ultrasound phantoms (mucosa and four glands per patient), train the segmentation
bundle with the demo config, score a held-out cohort (thickness, echogenicity, gland grades,
0-16 and 0-18 totals) and analyse it. Phantoms, not patients.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from . import demo_arguments

TRAIN_PATIENTS = 24
TEST_PATIENTS = 30


def run_demo(out: Path, train_patients: int = TRAIN_PATIENTS, test_patients: int = TEST_PATIENTS,
             verbose: bool = False) -> dict:
    from RheumImagingLib.console import stage_printer

    from SjogrenUSLib.sjogrenus_cli import main

    started = time.time()
    show = stage_printer(started)

    def step(args: list[str]) -> None:
        show(f"sjogrenus {' '.join(args)}")
        if main([*args, "--verbose"] if verbose else args) != 0:
            raise SystemExit(f"sjogrenus {args[0]} failed")

    step(["phantom", str(out / "phantoms_train"), "--patients", str(train_patients), "--seed", "1"])
    step(["phantom", str(out / "phantoms_test"), "--patients", str(test_patients), "--seed", "2"])
    step(["train", "--cohort", str(out / "phantoms_train" / "cohort.csv"), "--out", str(out / "bundle")])
    step(["score", str(out / "phantoms_test"), "--bundle", str(out / "bundle"), "--out", str(out / "scores.csv")])
    step(["analyze", str(out / "scores.csv"), "--out", str(out / "report")])
    report = json.loads((out / "report" / "report.json").read_text())
    print()
    for name, system in report["systems"].items():
        print(f"held-out {name}: AUROC {system['auroc']['estimate']:.3f}, cut-off {system['cutoff']}, "
              f"sensitivity {system['sensitivity']['estimate']:.1%}, specificity {system['specificity']['estimate']:.1%}")
    print(f"bundle:   {out / 'bundle'} (training log {out / 'bundle' / 'training.log'})\n"
          f"scores:   {out / 'scores.csv'}\nreport:   {out / 'report' / 'report.html'} "
          f"({time.time() - started:.0f} s in all)", flush=True)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    demo_arguments.add(parser, TRAIN_PATIENTS, TEST_PATIENTS)
    args = parser.parse_args(argv)
    run_demo(demo_arguments.run_folder(args, "sjogrenus"), args.train_patients, args.test_patients, args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
