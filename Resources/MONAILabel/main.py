"""MONAI Label app serving SlicerRheumImaging's trained bundles for assisted annotation (README.md, "MONAI Label").

    monailabel start_server --app Resources/MONAILabel --studies DIR [--conf bundles FOLDER] [--conf models A,B]

``bundles``: the folder holding the trained bundle folders (default: the extension's monai_bundle/). Served:
``metacarpal_contour`` (label map MC2 1, MC3 2, MC4 3 and the 40 control points per bone in the result JSON) and
``sjogren_us_segmentation`` (label map epithelium 1, submucosa 2, parenchyma 3), each trainable from the labels
saved in the datastore with the bundle's own train config. ``ra_bone_texture`` is not a MONAI Label model: it
classifies patches cut along metacarpal contours (a score per bone and hand), it does not label pixels.
"""

from __future__ import annotations

import logging
from pathlib import Path

import monailabel
from monailabel.interfaces.app import MONAILabelApp
from monailabel.tasks.activelearning.first import First
from monailabel.tasks.activelearning.random import Random

from lib.infers import ContourInfer, SegmentationInfer
from lib.trainers import ContourTrain, SegmentationTrain

logger = logging.getLogger(__name__)

MODELS = {  # bundle -> (inference task, training task)
    "metacarpal_contour": (ContourInfer, ContourTrain),
    "sjogren_us_segmentation": (SegmentationInfer, SegmentationTrain),
}
NOT_SERVED = {"ra_bone_texture": "classifies metacarpal patches (a texture score per bone and hand), labels no pixels"}


class RheumImagingApp(MONAILabelApp):
    def __init__(self, app_dir, studies, conf):
        default = Path(app_dir).resolve().parents[1] / "monai_bundle"
        self.bundles = Path(conf.get("bundles") or default).expanduser().resolve()
        names = [m.strip() for m in conf.get("models", ",".join(MODELS)).split(",") if m.strip()]
        unknown = [m for m in names if m not in MODELS]
        if unknown:
            reasons = "; ".join(f"{m}: {NOT_SERVED.get(m, 'no such model')}" for m in unknown)
            raise ValueError(f"--conf models: not a MONAI Label model of this app ({reasons}); one of {list(MODELS)}")
        self.models = {m: self.bundles / m for m in names}
        for name, path in self.models.items():
            if not (path / "configs" / "inference.json").is_file():
                raise ValueError(f"--conf bundles {self.bundles}: no bundle {name} ({path}/configs/inference.json)")
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="SlicerRheumImaging",
                         description="Metacarpal contours on hand radiographs and salivary/buccal ultrasound layers",
                         version=monailabel.__version__)

    def _tasks(self, kind: int) -> dict:
        """Each model's inference (kind 0) or training (kind 1) task, where the bundle allows it."""
        tasks = {}
        for name, path in self.models.items():
            task = MODELS[name][kind](str(path), self.conf)
            if task.is_valid():
                tasks[name] = task
            elif kind == 0:
                logger.warning(f"{name}: not served, {path}/models/model.pt is missing (train the bundle first)")
        return tasks

    def init_infers(self):
        return self._tasks(0)

    def init_trainers(self):
        return self._tasks(1)

    def init_strategies(self):
        return {"random": Random(), "first": First()}
