"""Between MONAI Label's datastore images and the bundles' 2-D arrays.

Slicer hands MONAI Label 2-D images as single-slice volumes (NRRD/NIfTI, MONAI layout X, Y, 1 with an affine); the
bundles work on 2-D frames. These transforms remember the image's grid, give the contour bundle the (rows, cols)
array its loader would give, and put every label map back onto the image's grid (shape and affine, uint8), so
that Slicer overlays it where it was drawn.
"""

from __future__ import annotations

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

GEOMETRY_KEY = "image_geometry"


def _affine(image) -> np.ndarray | None:
    meta = image.meta if isinstance(image, MetaTensor) else {}
    affine = meta.get("original_affine", meta.get("affine"))
    return None if affine is None else np.asarray(affine, dtype=np.float64)


class KeepGeometryd(MapTransform):
    """Store the loaded image's spatial shape and affine (before any bundle transform) in ``image_geometry``."""

    def __init__(self, keys: KeysCollection = "image", has_channel: bool = False):
        super().__init__(keys)
        self.has_channel = has_channel

    def __call__(self, data):
        d = dict(data)
        image = d[self.first_key(d)]
        shape = tuple(int(s) for s in image.shape[int(self.has_channel):])
        d[GEOMETRY_KEY] = {"spatial_shape": shape, "affine": _affine(image)}
        return d


class RowsColsd(MapTransform):
    """A loaded 2-D image or single-slice volume (MONAI layout X, Y[, 1]) as the (rows, cols) float32 array that
    ``numpy.load`` of the extension's prepared ``.npy`` gives, for bundles whose loader reads rows first."""

    def __call__(self, data):
        d = dict(data)
        for key in self.key_iterator(d):
            image = np.asarray(d[key], dtype=np.float32)
            frame = image.reshape(image.shape[:2]) if image.ndim == 3 and image.shape[2] == 1 else image
            if frame.ndim != 2:
                source = d.get("image_path", key)
                raise ValueError(f"{source}: a 2-D image or one slice was expected, got shape {image.shape}")
            d[key] = np.ascontiguousarray(frame.T)
        return d


class ToImageGeometryd(MapTransform):
    """A label map in the image's MONAI layout (X, Y, with or without a leading channel of 1) or, with
    ``rows_first``, in (rows, cols), as uint8 on the image's grid: its spatial shape and affine."""

    def __init__(self, keys: KeysCollection = "pred", rows_first: bool = False):
        super().__init__(keys)
        self.rows_first = rows_first

    def __call__(self, data):
        d = dict(data)
        geometry = d[GEOMETRY_KEY]
        for key in self.key_iterator(d):
            label = d[key].detach().cpu().numpy() if torch.is_tensor(d[key]) else np.asarray(d[key])
            label = np.squeeze(label)
            if self.rows_first:
                label = label.T
            label = label.reshape(geometry["spatial_shape"]).astype(np.uint8)
            affine = geometry["affine"]
            d[key] = MetaTensor(label, affine=affine) if affine is not None else label
        return d
