"""The bundle's datalist: JSON ``{"training": [item, ...]}`` (or ``"testing"`` for inference), one item per bone.

Item: ``image`` (a float32 ``.npy`` of (rows, cols), bone bright, or a PNG; relative to ``dataset_dir``),
``contour`` ((N, 2) closed outline in pixel x, y, point 0 at the distal end), ``spacing`` ((row, col) mm or
null), ``bone``, ``patient_id``; training also ``label`` (1 RA, 0 control) and ``fold``. docs/README.md, "Data".
"""

from __future__ import annotations

import json
import os

from scripts.checkpoints import BundleInputError

DATA_HELP = "docs/README.md, section 'Data'"


def load_items(datalist, dataset_dir, sections=("training",)) -> list[dict]:
    """The items of the first of ``sections`` present, with ``image`` joined to ``dataset_dir``."""
    if not os.path.isfile(datalist):
        raise BundleInputError(datalist, f"datalist not found (pass --dataset_dir or --datalist; {DATA_HELP})")
    with open(datalist) as f:
        content = json.load(f)
    for section in sections:
        if section in content:
            items = [dict(it, image=os.path.join(dataset_dir, it["image"])) for it in content[section]]
            for it in items:
                if not os.path.isfile(it["image"]):
                    raise BundleInputError(it["image"], f"image of datalist {datalist} not found ({DATA_HELP})")
            return items
    raise BundleInputError(datalist, f"no {' or '.join(repr(s) for s in sections)} list in it ({DATA_HELP})")
