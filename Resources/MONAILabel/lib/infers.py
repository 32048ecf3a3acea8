"""Inference tasks: each bundle's own declared pipeline (configs/inference.json), served by MONAI Label."""

from __future__ import annotations

import logging
import sys

import numpy as np
from monai.transforms import Compose, EnsureChannelFirstd, LoadImaged, SaveImaged
from monailabel.tasks.infer.bundle import BundleInferTask
from monailabel.utils.others.class_utils import unload_module

from .transforms import GEOMETRY_KEY, KeepGeometryd, RowsColsd, ToImageGeometryd

logger = logging.getLogger(__name__)


def _transforms(config, key: str) -> list:
    parsed = config.get_parsed_content(key, instantiate=True)
    return list(parsed.transforms) if isinstance(parsed, Compose) else list(parsed)


class SegmentationInfer(BundleInferTask):
    """sjogren_us_segmentation: the bundle's preprocessing (its loader reads the datastore's NRRD/NIfTI/PNG and
    makes a 2-D frame), network, inferer and postprocessing; the label map (epithelium 1, submucosa 2,
    parenchyma 3) is then put back on the image's grid."""

    def __init__(self, path: str, conf: dict):
        super().__init__(path, conf, type="segmentation", post_filter=[SaveImaged], add_post_restore=False)

    def pre_transforms(self, data=None):
        pre = list(super().pre_transforms(data))
        first = 1 if pre and "Load" in type(pre[0]).__name__ else 0
        return pre[:first] + [KeepGeometryd(self.input_key)] + pre[first:]

    def post_transforms(self, data=None):
        return list(super().post_transforms(data)) + [ToImageGeometryd(self.output_label_key)]


class ContourInfer(BundleInferTask):
    """metacarpal_contour: the datastore image as the (rows, cols) array the bundle's loader gives, the bundle's
    declared image transforms, then its two-stage ``predictor`` (localiser, Curve-GCN per bone). The label map
    holds each bone's mask (MC2 1, MC3 2, MC4 3); the result JSON holds each bone's 40 control points from the
    distal tip, in image pixels (x = column, y = row) and in RAS millimetres."""

    def __init__(self, path: str, conf: dict):
        super().__init__(path, conf, type="segmentation", add_post_restore=False, extend_load_image=False)
        self.bones = [name for name, _ in sorted(self.labels.items(), key=lambda kv: kv[1])] if self.valid else []
        self._predictor = None

    def _bundle_scripts(self):
        sys.path.insert(0, self.bundle_path)
        unload_module("scripts")

    def pre_transforms(self, data=None):
        self._bundle_scripts()
        try:
            self._update_device(data)
            declared = [t for t in _transforms(self.bundle_config, "preprocessing") if not isinstance(t, LoadImaged)]
        finally:
            sys.path.remove(self.bundle_path)
        if not declared or not isinstance(declared[0], EnsureChannelFirstd):
            declared.insert(0, EnsureChannelFirstd(self.input_key, channel_dim="no_channel"))
        load = LoadImaged(self.input_key, image_only=False)
        return [load, KeepGeometryd(self.input_key), RowsColsd(self.input_key)] + declared

    def predictor(self, data):
        """The bundle's ``predictor`` with its trained weights (its ``initialize`` loads them), built once."""
        if self._predictor is None:
            self._bundle_scripts()
            try:
                self._update_device(data)
                if "initialize" in self.bundle_config:
                    self.bundle_config.get_parsed_content("initialize", instantiate=True)
                self._predictor = self.bundle_config.get_parsed_content("predictor", instantiate=True)
            finally:
                sys.path.remove(self.bundle_path)
        return self._predictor

    def run_inferer(self, data, convert_to_batch=True, device="cuda"):
        contours = self.predictor(data)(data)
        first = next(iter(contours.values()))["mask"]
        label = np.zeros(first.shape, dtype=np.uint8)
        affine = data[GEOMETRY_KEY]["affine"]
        result = {}
        for value, bone in enumerate(self.bones, start=1):
            info = contours[bone.upper()] if bone.upper() in contours else contours[bone]
            label[np.asarray(info["mask"], dtype=bool)] = value
            points = np.asarray(info["control_points"], dtype=np.float64)  # (40, 2) x = column, y = row
            entry = {"control_points": points.round(3).tolist()}
            if affine is not None:
                dims = affine.shape[0] - 1  # 2 for a PNG, 3 for a single-slice volume
                ijk = np.c_[points, np.zeros((len(points), dims - 2)), np.ones(len(points))]
                entry["control_points_ras"] = (ijk @ affine.T)[:, :dims].round(4).tolist()
            result[bone.upper()] = entry
        data[self.output_label_key] = label
        data[self.output_json_key] = {"contours": result}
        return data

    def post_transforms(self, data=None):
        return [ToImageGeometryd(self.output_label_key, rows_first=True)]
