"""Training transforms the configs cannot express: bone masks at the localiser's size (stage 1) and a
jittered crop around each bone with its 40 points in crop coordinates (stage 2). Both take the image as
the declared preprocessing leaves it (channel first, scaled to [0, 1])."""

from __future__ import annotations

import numpy as np
import torch
from monai.transforms import MapTransform, RandomizableTransform

from .contours import to_network_points
from .geometry import BONES, box_of, crop_frame, cut_crop, pixels_to_crop, polygon_mask


class LocaliserLabeld(MapTransform):
    """``label``: (4, H, W) one class per pixel (background, MC2, MC3, MC4) at ``size`` from the full image's
    contours, so the bones compete for pixels as the softmax does."""

    def __init__(self, image_key: str = "image", contours_key: str = "contours", size=(256, 208)):
        super().__init__([contours_key])
        self.image_key, self.contours_key, self.size = image_key, contours_key, tuple(int(s) for s in size)

    def __call__(self, data):
        d = dict(data)
        rows, cols = d[self.image_key].shape[-2:]
        fy, fx = self.size[0] / rows, self.size[1] / cols
        masks = [
            polygon_mask((np.asarray(d[self.contours_key][b], float) + 0.5) * [fx, fy] - 0.5, self.size) for b in BONES
        ]
        masks.insert(0, ~np.any(masks, axis=0))
        d["label"] = torch.from_numpy(np.stack(masks).astype(np.float32))
        return d


def bone_items(datalist) -> list[dict]:
    """One stage-2 item per bone and image: ``{"image", "points"}`` with the 40 network points."""
    return [
        {"image": item["image"], "points": to_network_points(item["contours"][b]).astype(np.float32)}
        for item in datalist
        for b in BONES
    ]


class RandBoneCropd(RandomizableTransform, MapTransform):
    """``image``: the (1, S, S) crop around the bone's box, the box shifted and scaled at random by up to
    ``jitter`` of its size (the localiser's boxes vary); ``label``: the 40 points in [0, 1] crop (x, y)."""

    def __init__(self, crop_size: int, jitter: float = 0.06, image_key: str = "image", points_key: str = "points"):
        RandomizableTransform.__init__(self, prob=1.0)
        MapTransform.__init__(self, [image_key])
        self.crop_size, self.jitter = int(crop_size), float(jitter)
        self.image_key, self.points_key = image_key, points_key

    def __call__(self, data):
        points = np.asarray(data[self.points_key], float)
        x0, y0, x1, y1 = box_of(points)
        w, h = x1 - x0, y1 - y0
        d = self.R.uniform(-self.jitter, self.jitter, 4) * [w, h, w, h]
        frame = crop_frame([x0 + d[0], y0 + d[1], x1 + d[2], y1 + d[3]])
        image = np.asarray(data[self.image_key], dtype=np.float32)[0]
        return {
            "image": torch.from_numpy(cut_crop(image, frame, self.crop_size))[None],
            "label": torch.from_numpy(pixels_to_crop(points, frame).astype(np.float32)),
        }
