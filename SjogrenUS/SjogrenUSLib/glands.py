"""Gland parenchyma features: hypoechoic areas (count, diameter in mm), inhomogeneity and how much of
the gland the areas cover; and the grade a scoring system gives them.

Every feature is a ratio of grey levels of the same image (areas: darker than a fraction of the
parenchyma median; inhomogeneity: a spread over the speckle's own spread), so that gain and dynamic
range, which shift and scale the log-compressed grey levels, change them little (measured across
the phantom's acquisition settings in SjogrenUSLib.calibration).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .scoring import grade_gland, grading_notes

# Detection settings, calibrated on phantom seeds (SjogrenUSLib.calibration.calibrate_focus_ratio) and
# tested on others. A focus is a connected region inside the parenchyma whose smoothed intensity is
# below FOCUS_RATIO x the parenchyma's median (B-mode is log-compressed: a focus at ~0.5 x the
# parenchyma's echo level has its edge near 0.75 of the median grey level).
FOCUS_RATIO = 0.75
SMOOTH_MM = 0.2
MIN_DIAMETER_MM = 0.6
TEXTURE_SCALE_MM = 0.6  # local-mean scale of the inhomogeneity index: larger than the speckle
COVERAGE_MM = 2.0  # a parenchyma point within this distance of a hypoechoic area counts as involved


@dataclass
class GlandResult:
    """Foci diameters (mm), features and the grade; ``status`` "unavailable" with ``reason`` when no grade
    can be given; ``notes`` say what the grade assumed (reader criteria not entered)."""

    status: str
    grade: int | None = None
    diameters_mm: list = field(default_factory=list)
    reason: str = ""
    inhomogeneity: float | None = None
    diffuse_coverage: float | None = None
    notes: list = field(default_factory=list)

    def findings(self, reader: dict | None = None) -> dict:
        """Measured features and the reader's entries, as ``scoring.grade_gland`` reads them."""
        return {"inhomogeneity": self.inhomogeneity, "diffuse_coverage": self.diffuse_coverage, **(reader or {})}


def parenchyma_region(labels: np.ndarray, parenchyma: int = 3) -> np.ndarray:
    """The parenchyma with its holes filled: foci (label 4 in phantom truth, or unlabelled holes a
    segmenter leaves) lie inside the gland."""
    lab = np.asarray(labels)
    region = (lab == parenchyma) | (lab == 4)
    return ndimage.binary_fill_holes(region)


def _dark_mask(pixels, labels, spacing_mm):
    """(hypoechoic mask, parenchyma region, parenchyma core) of one image."""
    sy, sx = (float(s) for s in spacing_mm)
    region = parenchyma_region(labels)
    core = (np.asarray(labels) == 3) & ndimage.binary_erosion(region, iterations=2)
    if not core.any():
        return np.zeros_like(region), region, core
    img = ndimage.gaussian_filter(np.asarray(pixels, np.float64), (SMOOTH_MM / sy, SMOOTH_MM / sx))
    reference = float(np.median(img[core]))
    return (img < FOCUS_RATIO * reference) & region, region, core


def _areas(dark, spacing_mm):
    sy, sx = (float(s) for s in spacing_mm)
    comp, n = ndimage.label(dark)
    if n == 0:
        return comp, np.zeros(0)
    areas = ndimage.sum_labels(np.ones_like(comp), comp, index=np.arange(1, n + 1)) * sy * sx
    return comp, np.sqrt(4.0 * areas / np.pi)


def detect_foci(pixels: np.ndarray, labels: np.ndarray, spacing_mm) -> list[float]:
    """Equivalent-circle diameters (mm) of hypoechoic foci inside the parenchyma."""
    dark, _, _ = _dark_mask(pixels, labels, spacing_mm)
    _, diam = _areas(dark, spacing_mm)
    return sorted(float(d) for d in diam if d >= MIN_DIAMETER_MM)


def inhomogeneity_index(pixels, labels, spacing_mm, dark=None) -> float | None:
    """Spread (SD) of the parenchyma's local mean grey level at TEXTURE_SCALE_MM, over the spread of its
    pixels (interdecile range / 2.56, robust to the dark tail): hypoechoic areas and a 1 mm rim round
    them are left out, so the index describes the tissue between the foci. Both spreads scale with the
    grey levels per dB, so the ratio does not depend on dynamic range or gain; fully developed speckle
    alone gives a floor set by the speckle size. None when less than 20 mm^2 of parenchyma is left."""
    sy, sx = (float(s) for s in spacing_mm)
    if dark is None:
        dark, region, core = _dark_mask(pixels, labels, spacing_mm)
    else:
        region = parenchyma_region(labels)
        core = (np.asarray(labels) == 3) & ndimage.binary_erosion(region, iterations=2)
    rim = ndimage.distance_transform_edt(~dark, sampling=(sy, sx)) <= 1.0
    edge = ndimage.distance_transform_edt(region, sampling=(sy, sx)) > 2.0 * TEXTURE_SCALE_MM
    keep = core & ~rim & edge
    if keep.sum() * sy * sx < 20.0:
        return None
    img = np.asarray(pixels, np.float64)
    local = ndimage.gaussian_filter(img, (TEXTURE_SCALE_MM / sy, TEXTURE_SCALE_MM / sx))
    q10, q90 = np.percentile(img[keep], [10, 90])
    return float(np.std(local[keep]) / max((q90 - q10) / 2.563, 1e-9))


def diffuse_coverage(dark, region, spacing_mm) -> float | None:
    """Fraction of the parenchyma within COVERAGE_MM of a hypoechoic area (1 = the whole gland)."""
    if not region.any():
        return None
    if not dark.any():
        return 0.0
    near = ndimage.distance_transform_edt(~dark, sampling=tuple(float(s) for s in spacing_mm)) <= COVERAGE_MM
    return float((near & region).sum() / region.sum())


def grade_image(pixels, labels, spacing_mm, system: dict, reader: dict | None = None) -> GlandResult:
    """Grade one gland image by ``system`` (a scoring-system JSON); mm sizes need a calibration.
    ``reader``: the reader's entries for criteria the software does not measure (True/False/None)."""
    if spacing_mm is None:
        return GlandResult("unavailable", reason="image is uncalibrated: focus sizes in mm cannot be measured")
    if not parenchyma_region(labels).any():
        return GlandResult("unavailable", reason="no gland parenchyma found in the image")
    dark, region, _ = _dark_mask(pixels, labels, spacing_mm)
    comp, diam = _areas(dark, spacing_mm)
    kept = np.isin(comp, 1 + np.flatnonzero(diam >= MIN_DIAMETER_MM))
    d = sorted(float(x) for x in diam if x >= MIN_DIAMETER_MM)
    r = GlandResult("ok", None, d, inhomogeneity=inhomogeneity_index(pixels, labels, spacing_mm, kept),
                    diffuse_coverage=diffuse_coverage(kept, region, spacing_mm))
    r.grade = grade_gland(d, system, r.findings(reader))
    r.notes = grading_notes(system, reader)
    return r
