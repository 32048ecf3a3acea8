"""The ROI cut: the distal third of a bone, resampled along its long axis from its contour.

Axis: first principal direction of the outline points; its distal end is the extreme
projection on the side of contour point 0 (the distal tip). The patch has rows along the
axis (distal end at row 0) and columns across it (bone width in that third + margin),
sampled bilinearly to size x size (an anisotropic stretch: texture is compared at a
fixed patch geometry, as in the study).
"""

from __future__ import annotations

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform
from scipy.ndimage import map_coordinates


def bone_axis(contour) -> tuple[np.ndarray, np.ndarray, float, float]:
    """(centre, unit axis pointing distally, distal projection, proximal projection)."""
    pts = np.asarray(contour, dtype=np.float64)
    centre = pts.mean(0)
    _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
    axis = vt[0]
    t = (pts - centre) @ axis
    if t[0] < 0:
        axis, t = -axis, -t
    return centre, axis, float(t.max()), float(t.min())


def distal_third_frame(contour, margin: float = 0.1) -> dict:
    """The patch's oriented rectangle in pixels: centre, unit ``axis`` (distal), unit
    ``across``, ``length`` along the axis and ``width`` across (margin included)."""
    pts = np.asarray(contour, dtype=np.float64)
    centre, axis, t_dist, t_prox = bone_axis(pts)
    across = np.array([-axis[1], axis[0]])
    third = (t_dist - t_prox) / 3.0
    t = (pts - centre) @ axis
    v = (pts - centre) @ across
    band = v[t >= t_dist - third]
    pad = margin * (band.max() - band.min())
    lo, hi = band.min() - pad, band.max() + pad
    middle = centre + (t_dist - third / 2.0) * axis + (lo + hi) / 2.0 * across
    return {"centre": middle, "axis": axis, "across": across, "length": third, "width": hi - lo}


def distal_third_grid(contour, size: int, margin: float = 0.1) -> np.ndarray:
    """(2, size, size) sampling points (row, col) of the distal-third patch: rows run from
    the distal end toward proximal, columns across the bone."""
    f = distal_third_frame(contour, margin)
    rows = (0.5 - (np.arange(size) + 0.5) / size) * f["length"]
    cols = ((np.arange(size) + 0.5) / size - 0.5) * f["width"]
    xy = f["centre"] + rows[:, None, None] * f["axis"] + cols[None, :, None] * f["across"]  # size, size, 2 (x, y)
    return np.stack([xy[..., 1], xy[..., 0]])


def cut_distal_third(image, contour, size: int = 224, margin: float = 0.1) -> np.ndarray:
    """The distal-third patch (size x size float32) of a 2-D image (rows x cols, bone bright)."""
    image = np.asarray(image, dtype=np.float32)
    return map_coordinates(image, distal_third_grid(contour, size, margin), order=1, mode="nearest").astype(np.float32)


class CutDistalThirdd(MapTransform):
    """Replace ``keys`` (channel-first 2-D image, rows x cols) by the distal-third patch of ``contour_key``."""

    def __init__(self, keys: KeysCollection, contour_key: str = "contour", size: int = 224, margin: float = 0.1,
                 allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.contour_key, self.size, self.margin = contour_key, size, margin

    def __call__(self, data):
        d = dict(data)
        contour = np.asarray(d[self.contour_key], dtype=np.float64)
        for key in self.key_iterator(d):
            img = np.asarray(d[key])
            d[key] = np.stack([cut_distal_third(c, contour, self.size, self.margin) for c in img])
        return d
