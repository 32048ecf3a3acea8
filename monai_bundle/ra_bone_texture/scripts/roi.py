"""The ROI cut: the distal third of a bone, resampled along its long axis from its contour.

Axis: first principal direction of the outline points; its distal end is the extreme
projection on the side of contour point 0 (the distal tip). The patch has rows along the
axis (distal end at row 0) and columns across it. Columns run from the bone's radial to its
ulnar side whatever the laterality: a contour that runs clockwise on screen (a mirrored,
i.e. left, hand; the trained convention is counter-clockwise) flips the across direction, so
a mirrored image with its mirrored contour gives the same patch.

Two geometries (``patch_spacing_mm``):
- a number: the patch is sampled isotropically at that physical pixel size (mm), centred on
  the distal third, from the image's pixel spacing, so the network sees the same texture
  scale from every scanner. Coarser sampling than the image is preceded by a Gaussian
  low-pass of sigma = 0.5 * sqrt(patch^2 - image^2) mm per axis (anti-aliasing, and an equal
  effective resolution from images of different spacing);
- ``None``: the distal third (bone width in that third + margin) is stretched to size x size
  (the study's fixed patch geometry; the texture scale then depends on the scanner and bone).
"""

from __future__ import annotations

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform
from scipy.ndimage import gaussian_filter

FALLBACK_SPACING_MM = 0.15  # uncalibrated images: the middle of CR/DR hand plates' 0.1-0.2 mm


def clockwise_on_screen(contour) -> bool:
    """True when the closed outline (x right, y down) runs clockwise as seen on screen."""
    x, y = np.asarray(contour, dtype=np.float64).T
    return float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)) > 0


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
    """The patch's oriented rectangle in the contour's units: centre, unit ``axis`` (distal),
    unit ``across``, ``length`` along the axis and ``width`` across (margin included)."""
    pts = np.asarray(contour, dtype=np.float64)
    centre, axis, t_dist, t_prox = bone_axis(pts)
    across = np.array([-axis[1], axis[0]])
    if clockwise_on_screen(pts):
        across = -across
    third = (t_dist - t_prox) / 3.0
    t = (pts - centre) @ axis
    v = (pts - centre) @ across
    band = v[t >= t_dist - third]
    pad = margin * (band.max() - band.min())
    lo, hi = band.min() - pad, band.max() + pad
    middle = centre + (t_dist - third / 2.0) * axis + (lo + hi) / 2.0 * across
    return {"centre": middle, "axis": axis, "across": across, "length": third, "width": hi - lo}


def _spacing(spacing_mm) -> np.ndarray:
    """(x, y) = (column, row) pixel size in mm."""
    row, col = (float(v) for v in np.broadcast_to(np.asarray(spacing_mm, dtype=float), (2,)))
    return np.array([col, row])


def distal_third_grid(
    contour, size: int, margin: float = 0.1, spacing_mm=None, patch_spacing_mm: float | None = None
) -> np.ndarray:
    """(2, size, size) sampling points (row, col) of the distal-third patch: rows run from
    the distal end toward proximal, columns across the bone. ``spacing_mm``: the image's
    (row, col) pixel size, needed with ``patch_spacing_mm``."""
    xy_mm = _spacing(spacing_mm if patch_spacing_mm is not None else 1.0)
    f = distal_third_frame(np.asarray(contour, dtype=np.float64) * xy_mm, margin)
    centres = (np.arange(size) + 0.5) / size - 0.5
    if patch_spacing_mm is None:
        rows, cols = -centres * f["length"], centres * f["width"]
    else:
        rows, cols = -centres * size * patch_spacing_mm, centres * size * patch_spacing_mm
    # (centre + row * axis + col * across) / pixel size, one coordinate at a time: y (row), then x (column)
    return np.stack(
        [((f["centre"][k] + rows * f["axis"][k])[:, None] + cols[None, :] * f["across"][k]) / xy_mm[k] for k in (1, 0)]
    )


def patch_frame(
    contour, size: int, margin: float = 0.1, spacing_mm=None, patch_spacing_mm: float | None = None
) -> dict:
    """The rectangle the patch covers, in pixels (as :func:`distal_third_frame`; to show the ROI)."""
    if patch_spacing_mm is None:
        return distal_third_frame(contour, margin)
    xy_mm = _spacing(spacing_mm)
    f = distal_third_frame(np.asarray(contour, dtype=np.float64) * xy_mm, margin)
    extent = size * patch_spacing_mm
    axis, across = f["axis"] / xy_mm, f["across"] / xy_mm  # pixels per mm along each direction
    return {
        "centre": f["centre"] / xy_mm,
        "axis": axis / np.linalg.norm(axis),
        "across": across / np.linalg.norm(across),
        "length": extent * np.linalg.norm(axis),
        "width": extent * np.linalg.norm(across),
    }


def cut_distal_third(
    image, contour, size: int = 224, margin: float = 0.1, spacing_mm=None, patch_spacing_mm: float | None = None
) -> np.ndarray:
    """The distal-third patch (size x size float32) of a 2-D image (rows x cols, bone bright)."""
    image = np.asarray(image, dtype=np.float32)
    grid = distal_third_grid(contour, size, margin, spacing_mm, patch_spacing_mm)
    if patch_spacing_mm is not None:
        xy_mm = _spacing(spacing_mm)
        sigma_mm = 0.5 * np.sqrt(np.clip(patch_spacing_mm**2 - xy_mm**2, 0.0, None))
        sigma = (sigma_mm / xy_mm)[::-1]  # (row, col) pixels
        if sigma.max() > 0:  # low-pass only the region the grid reads
            pad = int(np.ceil(4 * sigma.max())) + 2
            lo = np.clip(np.floor(grid.reshape(2, -1).min(1)).astype(int) - pad, 0, np.array(image.shape) - 1)
            hi = np.clip(np.ceil(grid.reshape(2, -1).max(1)).astype(int) + pad + 1, lo + 1, np.array(image.shape))
            image = gaussian_filter(image[lo[0] : hi[0], lo[1] : hi[1]], sigma, mode="nearest")
            grid = grid - lo[:, None, None]
    return bilinear(image, grid)


def bilinear(image: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``scipy.ndimage.map_coordinates(image, grid, order=1, mode="nearest")`` of a 2-D float32 image, to the bit: the
    same float64 weights, products and sums in scipy's order, in numpy's vector operations (0.65 ms against
    scipy's 1.13 ms for a 224 px patch, whose C loop handles any spline order point by point)."""
    y, x = grid
    y0, x0 = np.floor(y), np.floor(x)
    ty, tx = y - y0, x - x0
    rows, cols = image.shape
    y0, x0 = y0.astype(np.intp), x0.astype(np.intp)
    top, bottom = np.clip(y0, 0, rows - 1) * cols, np.clip(y0 + 1, 0, rows - 1) * cols  # edges repeated
    left, right = np.clip(x0, 0, cols - 1), np.clip(x0 + 1, 0, cols - 1)
    flat, wy, wx = image.reshape(-1), 1.0 - ty, 1.0 - tx
    out = flat[top + left] * wy * wx
    out += flat[top + right] * wy * tx
    out += flat[bottom + left] * ty * wx
    out += flat[bottom + right] * ty * tx
    return out.astype(image.dtype)


class CutDistalThirdd(MapTransform):
    """Replace ``keys`` (channel-first 2-D image, rows x cols) by the distal-third patch of ``contour_key``,
    at ``patch_spacing_mm`` from the (row, col) pixel spacing in ``spacing_key`` (``fallback_spacing_mm``
    when that is missing or None: an uncalibrated image)."""

    def __init__(
        self,
        keys: KeysCollection,
        contour_key: str = "contour",
        size: int = 224,
        margin: float = 0.1,
        patch_spacing_mm: float | None = None,
        spacing_key: str = "spacing",
        fallback_spacing_mm: float = FALLBACK_SPACING_MM,
        allow_missing_keys: bool = False,
    ):
        super().__init__(keys, allow_missing_keys)
        self.contour_key, self.size, self.margin = contour_key, size, margin
        self.patch_spacing_mm = None if patch_spacing_mm is None else float(patch_spacing_mm)
        self.spacing_key, self.fallback_spacing_mm = spacing_key, float(fallback_spacing_mm)

    def __call__(self, data):
        d = dict(data)
        contour = np.asarray(d[self.contour_key], dtype=np.float64)
        spacing = d.get(self.spacing_key)
        spacing = self.fallback_spacing_mm if spacing is None else spacing
        for key in self.key_iterator(d):
            img = np.asarray(d[key])
            d[key] = np.stack(
                [cut_distal_third(c, contour, self.size, self.margin, spacing, self.patch_spacing_mm) for c in img]
            )
        return d
