"""Write ``datalist.json`` (MONAI decathlon format) for ``train.json`` from a folder of images and label maps.

Layout: ``DATASET_DIR/images/<name>.<ext>`` and ``DATASET_DIR/labels/<name>.<ext>`` with the same file name; any
format MONAI's ``LoadImage`` reads (PNG, NIfTI, NRRD, or ``.npy`` arrays indexed rows x columns). Images whose
names share the part before the first ``_`` (``<patient>_<site>``) go to the same split, so a patient's images are
never both trained on and validated on. Usable without SlicerRheumImaging::

    python scripts/datalist.py --dataset_dir DATASET_DIR [--val_fraction 0.2] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import os
import random


def group_of(name: str) -> str:
    """The patient a file belongs to: its name up to the first ``_`` (the whole stem when there is none)."""
    return name.split(".")[0].split("_")[0]


def build(dataset_dir: str, val_fraction: float = 0.2, seed: int = 0, output: str | None = None) -> str:
    """Pair ``images/`` with ``labels/`` by file name, split by patient, write the datalist; returns its path."""
    images_dir, labels_dir = os.path.join(dataset_dir, "images"), os.path.join(dataset_dir, "labels")
    for folder in (images_dir, labels_dir):
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"{folder}: missing (expected images/ and labels/ with the same file names)")
    names = sorted(n for n in os.listdir(images_dir) if not n.startswith("."))
    missing = [n for n in names if not os.path.isfile(os.path.join(labels_dir, n))]
    if not names or missing:
        raise FileNotFoundError(f"{labels_dir}: no label map for {', '.join(missing) or 'any image (no images)'}")
    groups = sorted({group_of(n) for n in names})
    random.Random(seed).shuffle(groups)
    n_val = min(max(round(val_fraction * len(groups)), 1 if val_fraction > 0 else 0), max(len(groups) - 1, 0))
    validation = set(groups[:n_val])
    output = output or os.path.join(dataset_dir, "datalist.json")
    base = os.path.dirname(os.path.abspath(output))  # MONAI resolves the paths against the datalist's folder
    pairs = {"training": [], "validation": []}
    for name in names:
        split = "validation" if group_of(name) in validation else "training"
        pairs[split].append(
            {
                key: os.path.relpath(os.path.join(folder, name), base)
                for key, folder in (("image", images_dir), ("label", labels_dir))
            }
        )
    with open(output, "w") as f:
        json.dump(
            {"description": f"images/ and labels/ of {dataset_dir}, split by patient (seed {seed})", **pairs},
            f,
            indent=1,
        )
    return output


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset_dir", required=True)
    parser.add_argument("--val_fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="default: DATASET_DIR/datalist.json")
    args = parser.parse_args(argv)
    print(build(args.dataset_dir, args.val_fraction, args.seed, args.output))


if __name__ == "__main__":
    main()
