"""Layer thickness in mm from a label map: perpendicular to the layer, only with a real calibration.

What is measured: the buccal mucosa's epithelium (segmentation label 1, the hyperechoic surface band
between the gel/probe and the hypoechoic submucosa), not the full mucosa (epithelium + lamina propria
+ submucosa down to the buccinator). That is the layer whose thinning the seed study's "thickness of
buccal mucosa" (cut-off 0.38 mm) describes: at 0.38 mm it can only be the epithelial band, the full
mucosa being millimetres thick. The value is the mean (and median) over every column that holds the
layer of its extent perpendicular to the layer's smoothed centre line; a user's caliper reading at one
point (a drawn line in the module, or a ``thickness_mm`` cohort column for ``sjogrenus score``)
replaces it and is recorded as user-given.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter1d


@dataclass
class Thickness:
    """``status`` is "ok" or "unavailable"; when unavailable, ``reason`` says why and no mm value is given."""

    status: str
    mean_mm: float | None = None
    median_mm: float | None = None
    n_samples: int = 0
    reason: str = ""
    samples_mm: list = field(default_factory=list)


def layer_thickness(labels: np.ndarray, spacing_mm, layer: int = 1, smooth_cols: float = 5.0) -> Thickness:
    """Thickness of ``layer`` in ``labels`` (rows = depth), sampled at every column that holds the layer.

    Per column the layer runs from its first to one past its last pixel (upper and lower boundary);
    the vertical extent is projected on the local normal of the smoothed centre line, so an oblique
    layer is not measured too thick.  ``spacing_mm`` is (row, col) from the image's calibration; None
    or non-positive spacing gives "unavailable" — pixels are never called mm.
    """
    if spacing_mm is None:
        return Thickness("unavailable", reason="image is uncalibrated: no pixel spacing or ultrasound region")
    sy, sx = (float(s) for s in spacing_mm)
    if not (sy > 0 and sx > 0 and np.isfinite(sy) and np.isfinite(sx)):
        return Thickness("unavailable", reason=f"invalid pixel spacing {spacing_mm}")
    mask = np.asarray(labels) == layer
    cols = np.flatnonzero(mask.any(axis=0))
    if cols.size < 3:
        return Thickness("unavailable", reason=f"layer {layer} is absent or too short ({cols.size} columns)")
    sub = mask[:, cols]
    rows = np.arange(mask.shape[0])[:, None]
    top = np.where(sub, rows, mask.shape[0]).min(axis=0).astype(float)
    bottom = np.where(sub, rows, -1).max(axis=0).astype(float) + 1.0
    centre = gaussian_filter1d((top + bottom) / 2.0 * sy, smooth_cols, mode="nearest")
    slope = np.gradient(centre, cols * sx)  # d(depth mm)/d(lateral mm)
    vertical_mm = (bottom - top) * sy
    samples = vertical_mm / np.sqrt(1.0 + slope**2)
    return Thickness("ok", float(samples.mean()), float(np.median(samples)), int(samples.size),
                     samples_mm=samples.tolist())


def line_length_mm(p0_mm, p1_mm, calibrated: bool) -> Thickness:
    """Thickness from a user-drawn line (end points in mm, RAS of a calibrated volume)."""
    if not calibrated:
        return Thickness("unavailable", reason="image is uncalibrated: a drawn line has no length in mm")
    return user_thickness(np.linalg.norm(np.asarray(p1_mm, float) - np.asarray(p0_mm, float)))


def user_thickness(thickness_mm: float) -> Thickness:
    """A caliper reading (mm) the user typed or measured: it replaces the automatic value."""
    t = float(thickness_mm)
    return Thickness("ok", t, t, 1, samples_mm=[t])
