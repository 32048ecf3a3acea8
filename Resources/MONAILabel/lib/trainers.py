"""Training tasks: each bundle's own configs/train.json on the label maps saved in MONAI Label's datastore."""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import monai.bundle
import numpy as np
from monai.data import partition_dataset
from monai.transforms import LoadImage
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.train.bundle import BundleTrainTask
from monailabel.utils.others.class_utils import unload_module
from monailabel.utils.others.generic import device_list, name_to_device
from skimage.measure import find_contours

from .transforms import RowsColsd

logger = logging.getLogger(__name__)


class SegmentationTrain(BundleTrainTask):
    """sjogren_us_segmentation: the bundle's train.json on the datastore's image/label pairs as they are (its loader
    reads NRRD/NIfTI/PNG). The request's epochs also set the config's own ``max_epochs`` (the trainer's, and what
    the config derives from it); a round shorter than ``val_interval`` is validated after its last epoch by the
    config's ``run``, so it still saves its weights."""

    def _update_overrides(self, overrides):
        if "max_epochs" in self.bundle_config.config:
            overrides["max_epochs"] = overrides[self.const.key_train_trainer_max_epochs()]
        return overrides


def outline(mask: np.ndarray) -> list[list[float]]:
    """The outer boundary of a (rows, cols) mask's largest region as closed-curve points (x = column, y = row)."""
    padded = np.pad(mask.astype(np.float32), 1)
    curves = find_contours(padded, 0.5)
    if not curves:
        return []
    longest = max(curves, key=len)[:-1] - 1.0  # closed: drop the repeated point; undo the padding
    return longest[:, ::-1].round(3).tolist()


class ContourTrain(TrainTask):
    """metacarpal_contour on the datastore: each labelled image becomes the (rows, cols) ``.npy`` the bundle
    reads and each bone label (MC2 1, MC3 2, MC4 3) its outline, in a datalist JSON (the bundle's
    scripts/datalist.py format); then ``monai.bundle run`` of the bundle's train.json, which writes the bundle's
    models/ (the served weights)."""

    def __init__(self, path: str, conf: dict, bones=("MC2", "MC3", "MC4")):
        self.bundle_path = str(path)
        self.bones = tuple(bones)
        self.config_file = os.path.join(self.bundle_path, "configs", "train.json")
        with open(os.path.join(self.bundle_path, "configs", "metadata.json")) as fh:
            metadata = json.load(fh)
        super().__init__(metadata.get("description", ""))
        self.version = metadata.get("version")

    def is_valid(self) -> bool:
        return os.path.isfile(self.config_file)

    def config(self):
        return {"device": device_list(), "max_epochs": 50, "val_split": 0.2}

    def datalist(self, datastore, folder: Path) -> list[dict]:
        load, rows_cols = LoadImage(image_only=True), RowsColsd("a")
        items = []
        for d in datastore.datalist():
            if not d or not d.get("label"):
                continue
            stem = Path(d["image"]).name.split(".")[0]
            image = rows_cols({"a": load(d["image"])})["a"]
            label = rows_cols({"a": load(d["label"])})["a"]
            np.save(folder / f"{stem}.npy", image)
            contours = {bone: outline(label == value) for value, bone in enumerate(self.bones, start=1)}
            missing = [bone for bone, points in contours.items() if len(points) < 3]
            if missing:
                logger.warning(f"{d['label']}: no {', '.join(missing)}; image left out of training")
                continue
            items.append({"image": f"{stem}.npy", "contours": contours})
        return items

    def __call__(self, request, datastore):
        config = json.loads(Path(self.config_file).read_text())
        epochs = int(request.get("max_epochs", 50))
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            items = self.datalist(datastore, folder)
            if not items:
                raise ValueError("no labelled image with MC2, MC3 and MC4 in the datastore")
            val_split = float(request.get("val_split", 0.2))
            split = val_split > 0 and len(items) > 1
            train, val = partition_dataset(items, ratios=[1 - val_split, val_split]) if split else (items, items)
            (folder / "datalist.json").write_text(json.dumps({"training": train, "validation": val or train}))
            overrides = {k: epochs for k in _max_epoch_ids(config)}
            overrides.update(bundle_root=self.bundle_path, dataset_dir=str(folder),
                             datalist_file=str(folder / "datalist.json"),
                             device=name_to_device(request.get("device", "cuda")))
            logger.info(f"Training {self.bundle_path} on {len(train)} images ({len(val)} validation): {overrides}")
            sys.path.insert(0, self.bundle_path)
            unload_module("scripts")
            try:
                monai.bundle.run(run_id="run", config_file=self.config_file,
                                 meta_file=os.path.join(self.bundle_path, "configs", "metadata.json"), **overrides)
            finally:
                sys.path.remove(self.bundle_path)
        return {}


def _max_epoch_ids(config: dict, prefix: str = "") -> list[str]:
    """Every ``max_epochs`` id holding a number (``max_epochs``, ``stage1#max_epochs``, ...)."""
    ids = []
    for key, value in config.items():
        if key == "max_epochs" and isinstance(value, int):
            ids.append(prefix + key)
        elif isinstance(value, dict):
            ids += _max_epoch_ids(value, prefix + key + "#")
    return ids
