"""The training list: a datalist JSON, or a folder of images each with its contours beside it.

Datalist JSON (paths relative to the JSON file's folder, or absolute)::

    {"training": [{"image": "images/a.npy", "contours": {"MC2": [[x, y], ...], "MC3": ..., "MC4": ...}}, ...]}

``image`` is a ``.npy`` float array (rows, cols) or a PNG (bone bright); each contour is a closed outline in that
image's pixels (x = column, y = row), any number of points, any start, either orientation (``scripts.contours``
resamples it). A folder works the same way: ``<stem>.png`` or ``<stem>.npy`` with ``<stem>_contours.json`` beside
it, holding ``{"MC2": {"control_points": [[x, y], ...]}, ...}`` as ``inference.json`` writes it, so corrected
predictions can be trained on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .geometry import BONES

IMAGE_SUFFIXES = (".npy", ".png")
CONTOURS_SUFFIX = "_contours.json"


def images_in(folder) -> list[str]:
    """The images of a folder the bundle reads (``.npy``, ``.png``), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise SystemExit(f"{folder}: no such folder (set --dataset_dir to the folder of images)")
    return [str(p) for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]


def from_folder(folder) -> list[dict]:
    """Training items of a folder: every image with a ``<stem>_contours.json`` beside it."""
    items = []
    for image in images_in(folder):
        truth = Path(image).with_name(Path(image).stem + CONTOURS_SUFFIX)
        if truth.is_file():
            bones = json.loads(truth.read_text())
            items.append({"image": image, "contours": {b: bones[b]["control_points"] for b in BONES}})
    if not items:
        raise SystemExit(f"{folder}: no image with its {CONTOURS_SUFFIX} beside it (docs/README.md, 'Training data')")
    return items


def from_json(path, section: str = "training") -> list[dict]:
    """The items of one section of a datalist JSON, image paths made absolute."""
    path = Path(path)
    items = json.loads(path.read_text())[section]
    for item in items:
        item["image"] = os.path.join(path.parent, item["image"])
        missing = [b for b in BONES if b not in item.get("contours", {})]
        if missing:
            raise SystemExit(f"{path}: item {item['image']} has no contour for {', '.join(missing)}")
    return items


def training_items(datalist_file, dataset_dir, section: str = "training") -> list[dict]:
    """The datalist JSON when given and present, else the folder ``dataset_dir``."""
    if datalist_file and os.path.isfile(datalist_file):
        return from_json(datalist_file, section)
    return from_folder(dataset_dir)
