"""Image geometry shared by training and inference: bone boxes, the
bone crop (pixel <-> crop [0, 1] coordinates), masks from outlines."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

BONES = ("MC2", "MC3", "MC4")
# crop = the bone's box enlarged by these factors (x, y): the bone fills most of the crop, so
# the 40 points resolve its outline finely; the initial circle becomes an ellipse in pixels
MARGIN = (1.35, 1.2)


def polygon_mask(points_xy, shape) -> np.ndarray:
    """Boolean mask (rows, cols) inside a closed outline given in pixel (x, y)."""
    img = Image.new("L", (int(shape[1]), int(shape[0])), 0)
    flat = np.asarray(points_xy, dtype=float).reshape(-1).tolist()  # x0, y0, x1, ...: no tuple per point
    ImageDraw.Draw(img).polygon(flat, fill=1, outline=1)
    return np.asarray(img, dtype=bool)


def box_of(points_xy) -> np.ndarray:
    """(x0, y0, x1, y1) of a point set."""
    pts = np.asarray(points_xy, dtype=float)
    return np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])


def crop_frame(box, margin=MARGIN) -> np.ndarray:
    """(x0, y0, width, height) of the crop around a box: crop (u, v) in [0, 1] is pixel
    (x0 + u * width, y0 + v * height)."""
    x0, y0, x1, y1 = np.asarray(box, dtype=float)
    w, h = max(x1 - x0, 4.0) * margin[0], max(y1 - y0, 4.0) * margin[1]
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return np.array([cx - w / 2, cy - h / 2, w, h])


def cut_crop(image: np.ndarray, frame, size: int) -> np.ndarray:
    """The crop (size, size) of ``image`` at ``frame``, bilinear, edges repeated."""
    return cut_crops(image, [frame], size)[0]


def cut_crops(image: np.ndarray, frames, size: int) -> np.ndarray:
    """The crops (n, size, size) of ``image`` at each of ``frames`` (as :func:`cut_crop`), in one resampling."""
    centres = (np.arange(size) + 0.5) / size
    grids = [np.meshgrid(y0 + centres * h - 0.5, x0 + centres * w - 0.5, indexing="ij") for x0, y0, w, h in frames]
    return ndimage.map_coordinates(image, np.stack(grids, axis=1), order=1, mode="nearest").astype(np.float32)


def pixels_to_crop(points_xy, frame) -> np.ndarray:
    x0, y0, w, h = frame
    pts = np.asarray(points_xy, dtype=float)
    return np.stack([(pts[:, 0] + 0.5 - x0) / w, (pts[:, 1] + 0.5 - y0) / h], axis=-1)


def crop_to_pixels(points_uv, frame) -> np.ndarray:
    x0, y0, w, h = frame
    pts = np.asarray(points_uv, dtype=float)
    return np.stack([x0 + pts[:, 0] * w - 0.5, y0 + pts[:, 1] * h - 0.5], axis=-1)


def label_box(mask: np.ndarray):
    """Box (x0, y0, x1, y1) of a mask's pixels (edges, not centres), or None when the mask is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=float)
