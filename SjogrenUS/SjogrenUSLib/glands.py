"""Gland parenchyma features: hypoechoic areas (count, diameter in mm), inhomogeneity and how much of
the gland the areas cover; and the grade a scoring system gives them.

Every feature is a ratio of grey levels of the same image (areas: darker than a fraction of the
parenchyma median; inhomogeneity: a spread beyond the one the image's own speckle gives, over the
pixel spread), so that gain and dynamic range, which shift and scale the log-compressed grey levels,
change them little, and speckle size and speckle reduction move the speckle floor the index is
measured against rather than the index (measured across the phantom's acquisition settings in
RheumImagingDemo.us_calibration_cli).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .scoring import grade_gland, grading_notes

# Detection settings, calibrated on phantom seeds (RheumImagingDemo.us_calibration_cli.calibrate_focus_ratio) and
# tested on others. A focus is a connected region inside the parenchyma whose smoothed intensity is
# below FOCUS_RATIO x the parenchyma's median (B-mode is log-compressed: a focus at ~0.5 x the
# parenchyma's echo level has its edge near 0.75 of the median grey level).
FOCUS_RATIO = 0.75
SMOOTH_MM = 0.2
MIN_DIAMETER_MM = 0.6
TEXTURE_SCALE_MM = 0.2  # local-mean scale (Gaussian sigma) of the inhomogeneity index; chosen on the calibration
# seeds (0.15-0.4 mm compared: 0.2 separated them best, RheumImagingDemo.us_calibration_cli.compare_texture_scales)
TEXTURE_EDGE_MM = 1.2  # parenchyma this close to the gland's border is left out of the index
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
    # scipy's binary_fill_holes (the rest, 4-connected, that does not reach the border) from one labelling
    # instead of a dilation grown pixel by pixel from the border
    rest, _ = ndimage.label(~region)
    border = np.concatenate([rest[0], rest[-1], rest[:, 0], rest[:, -1]])
    hole = np.ones(rest.max() + 1, bool)
    hole[border] = False
    return region | hole[rest]


def _core(labels, region):
    return (np.asarray(labels) == 3) & ndimage.binary_erosion(region, iterations=2)


def _smoothed(pixels, spacing_mm, scale_mm):
    sy, sx = (float(s) for s in spacing_mm)
    return ndimage.gaussian_filter(np.asarray(pixels, np.float64), (scale_mm / sy, scale_mm / sx))


def _distance(dark, spacing_mm):
    """Distance (mm) of each pixel to the nearest hypoechoic one; infinite when there is none (scipy would
    measure to a point beyond the array's first corner)."""
    if not dark.any():
        return np.full(dark.shape, np.inf)
    return ndimage.distance_transform_edt(~dark, sampling=tuple(float(s) for s in spacing_mm))


def _dark_mask(pixels, labels, spacing_mm, region=None, smoothed=None):
    """(hypoechoic mask, parenchyma region, parenchyma core) of one image; ``region`` and ``smoothed`` (the pixels
    at SMOOTH_MM) when the caller has them already."""
    region = parenchyma_region(labels) if region is None else region
    core = _core(labels, region)
    if not core.any():
        return np.zeros_like(region), region, core
    img = _smoothed(pixels, spacing_mm, SMOOTH_MM) if smoothed is None else smoothed
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


def _lag1_correlation(img, keep, axis: int) -> float:
    """Correlation of neighbouring pixels along ``axis`` over the pixel pairs that both lie in ``keep``."""
    both = keep & np.roll(keep, -1, axis=axis)
    both[(slice(None),) * axis + (-1,)] = False
    diff = (np.roll(img, -1, axis=axis) - img)[both]
    return float(1.0 - np.mean(diff**2) / (2.0 * np.var(img[keep])))


def speckle_floor(img, keep, scale_px) -> float:
    """Variance of a Gaussian local mean (sigma ``scale_px`` rows, cols) of pure speckle, over the pixel
    variance: the field is modelled as white noise smoothed by a Gaussian whose width each way follows from
    the lag-1 correlation (rho = exp(-1 / (4 s^2))), so the floor is the product of s / sqrt(s^2 + scale^2).
    Coarser speckle (a lower frequency) and speckle reduction (a smoothing) both raise it."""
    floor = 1.0
    for axis, scale in enumerate(scale_px):
        rho = min(max(_lag1_correlation(img, keep, axis), 1e-3), 0.999)
        s2 = -1.0 / (4.0 * np.log(rho))
        floor *= np.sqrt(s2 / (s2 + scale**2))
    return float(floor)


def inhomogeneity_index(pixels, labels, spacing_mm, dark=None) -> float | None:
    """Spread of the parenchyma's local mean grey level (Gaussian, TEXTURE_SCALE_MM) beyond what its speckle
    alone gives, in units of the pixel spread: sqrt(max(var(local) / var(pixels) - speckle_floor, 0)).
    Hypoechoic areas and a 1 mm rim round them are left out, so the index describes the tissue between the
    foci. Variances of the same image scale together with the grey levels per dB (gain, dynamic range);
    the floor comes from the image's own pixel correlation, so smoother speckle (speckle reduction, a lower
    frequency) raises the floor instead of the index (the earlier index, the local-mean spread over the
    pixel spread at 0.6 mm, read speckle-reduced normal glands as inhomogeneous). None when less than
    20 mm^2 of parenchyma is left."""
    if dark is None:
        dark, region, core = _dark_mask(pixels, labels, spacing_mm)
    else:
        region = parenchyma_region(labels)
        core = _core(labels, region)
    return _index(pixels, region, core, _distance(dark, spacing_mm), spacing_mm)


def _index(pixels, region, core, dark_distance, spacing_mm, local=None):
    """:func:`inhomogeneity_index` from the masks; ``local``: the pixels at TEXTURE_SCALE_MM, when computed."""
    sy, sx = (float(s) for s in spacing_mm)
    rim = dark_distance <= 1.0
    edge = ndimage.distance_transform_edt(region, sampling=(sy, sx)) > TEXTURE_EDGE_MM
    keep = core & ~rim & edge
    if keep.sum() * sy * sx < 20.0:
        return None
    img = np.asarray(pixels, np.float64)
    scale_px = (TEXTURE_SCALE_MM / sy, TEXTURE_SCALE_MM / sx)
    local = ndimage.gaussian_filter(img, scale_px) if local is None else local
    ratio = np.var(local[keep]) / max(float(np.var(img[keep])), 1e-12)
    return float(np.sqrt(max(ratio - speckle_floor(img, keep, scale_px), 0.0)))


def diffuse_coverage(dark, region, spacing_mm, dark_distance=None) -> float | None:
    """Fraction of the parenchyma within COVERAGE_MM of a hypoechoic area (1 = the whole gland);
    ``dark_distance``: ``_distance(dark, spacing_mm)`` when computed."""
    if not region.any():
        return None
    if not dark.any():
        return 0.0
    near = (_distance(dark, spacing_mm) if dark_distance is None else dark_distance) <= COVERAGE_MM
    return float((near & region).sum() / region.sum())


def _gland_window(labels, spacing_mm) -> tuple[slice, slice] | None:
    """The part of the image the gland measures read (None: no parenchyma): the parenchyma's bounding box, widened
    by the reach of the Gaussian smoothings (scipy truncates them at 4 sigma) and by at least one pixel, within the
    image. Every measure on it equals the one on the whole image (the masks, distances, smoothed values and
    component numbering inside the box are the same), at a fraction of the pixels: the gland measures were the
    largest fixed cost of a gland image (issue 17)."""
    lab = np.asarray(labels)
    gland = (lab == 3) | (lab == 4)
    rows, cols = np.flatnonzero(gland.any(axis=1)), np.flatnonzero(gland.any(axis=0))
    if not rows.size:
        return None
    window = []
    for found, size, spacing in ((rows, lab.shape[0], spacing_mm[0]), (cols, lab.shape[1], spacing_mm[1])):
        reach = max(1, int(4.0 * max(SMOOTH_MM, TEXTURE_SCALE_MM) / float(spacing) + 0.5))
        window.append(slice(max(found[0] - reach, 0), min(found[-1] + 1 + reach, size)))
    return tuple(window)


def grade_image(pixels, labels, spacing_mm, system: dict, reader: dict | None = None) -> GlandResult:
    """Grade one gland image by ``system`` (a scoring-system JSON); mm sizes need a calibration.
    ``reader``: the reader's entries for criteria the software does not measure (True/False/None)."""
    if spacing_mm is None:
        return GlandResult("unavailable", reason="image is uncalibrated: focus sizes in mm cannot be measured")
    window = _gland_window(labels, spacing_mm)
    if window is None:
        return GlandResult("unavailable", reason="no gland parenchyma found in the image")
    pixels, labels = np.asarray(pixels)[window], np.asarray(labels)[window]
    region = parenchyma_region(labels)
    # Each mask, smoothing and distance map once (a quarter of an image's fixed work was computing them again).
    smoothed = _smoothed(pixels, spacing_mm, SMOOTH_MM)
    dark, region, core = _dark_mask(pixels, labels, spacing_mm, region, smoothed)
    comp, diam = _areas(dark, spacing_mm)
    kept = np.isin(comp, 1 + np.flatnonzero(diam >= MIN_DIAMETER_MM))
    d = sorted(float(x) for x in diam if x >= MIN_DIAMETER_MM)
    distance = _distance(kept, spacing_mm)
    local = smoothed if TEXTURE_SCALE_MM == SMOOTH_MM else None
    r = GlandResult("ok", None, d, inhomogeneity=_index(pixels, region, core, distance, spacing_mm, local),
                    diffuse_coverage=diffuse_coverage(kept, region, spacing_mm, distance))
    r.grade = grade_gland(d, system, r.findings(reader))
    r.notes = grading_notes(system, reader)
    return r
