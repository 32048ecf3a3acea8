"""Epithelium echogenicity relative to an internal reference in the same image, mapped to the study's
two classes.

Why relative, and in dB: a B-mode grey level is a * 10 log10(intensity) + b, where the gain shifts b
and the dynamic range sets a (grey levels per dB). Differences of grey levels cancel the gain; dividing
them by a cancels the dynamic range. a is taken from the file when it says how the image was
log-compressed (``dynamic_range_db``: 255 grey levels span that many dB); otherwise from the speckle of
the reference region itself: in fully developed speckle the intensity is exponentially distributed,
so its 90th and 50th percentiles lie 10 log10(ln 10 / ln 2) = 5.21 dB apart whatever the scanner.
Features: ``contrast_db`` = epithelium median - reference median, ``spread_db`` = epithelium 90th - 10th
percentile; heterogeneous hyperechoic when their sum reaches MIN_SCORE_DB (brighter and patchier both
count; one threshold, fitted on one set of seeds). Threshold: calibrated on phantom seeds across acquisition settings
(RheumImagingDemo.us_calibration_cli.calibrate_echogenicity) and tested on other seeds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = ("homogeneous", "heterogeneous_hyperechoic")
SPECKLE_P90_P50_DB = 10.0 * np.log10(np.log(10.0) / np.log(2.0))  # 5.21 dB, exponential intensity
# Heterogeneous hyperechoic: contrast_db + spread_db >= MIN_SCORE_DB; the value
# calibration.calibrate_echogenicity() gives on its calibration seeds (varied acquisition).
MIN_SCORE_DB = 27.56


@dataclass
class Echogenicity:
    status: str
    cls: str | None = None
    contrast_db: float | None = None  # epithelium median - reference median (dB)
    spread_db: float | None = None  # epithelium 90th - 10th percentile (dB)
    db_per_grey: float | None = None  # the log compression used: from the file, or "speckle" estimated
    db_source: str = ""
    reason: str = ""
    overridden: bool = False


def features(pixels, labels, layer: int = 1, reference=2, dynamic_range_db: float | None = None):
    """(contrast_db, spread_db, db_per_grey, source) of ``layer`` against ``reference``, or a reason string."""
    img = np.asarray(pixels, np.float64)
    lab = np.asarray(labels)
    epi = img[lab == layer]
    ref_mask = lab == reference if np.isscalar(reference) else np.asarray(reference, bool)
    ref = img[ref_mask]
    if epi.size < 20 or ref.size < 20:
        return "epithelium or reference region too small (< 20 pixels)"
    if dynamic_range_db:
        db_per_grey, source = float(dynamic_range_db) / 255.0, "file"
    else:
        r50, r90 = np.percentile(ref, [50, 90])
        if r90 - r50 < 1.0:
            return "reference region has no speckle to calibrate the grey scale (saturated or blank)"
        db_per_grey, source = SPECKLE_P90_P50_DB / (r90 - r50), "speckle"
    contrast = (np.median(epi) - np.median(ref)) * db_per_grey
    spread = (np.percentile(epi, 90) - np.percentile(epi, 10)) * db_per_grey
    return float(contrast), float(spread), float(db_per_grey), source


def classify(pixels, labels, layer: int = 1, reference=2, dynamic_range_db: float | None = None,
             min_score_db: float | None = None) -> Echogenicity:
    """Class of ``layer`` against ``reference`` (a label value, or a boolean mask such as a user ROI);
    ``min_score_db`` defaults to the calibrated MIN_SCORE_DB."""
    f = features(pixels, labels, layer, reference, dynamic_range_db)
    if isinstance(f, str):
        return Echogenicity("unavailable", reason=f)
    contrast, spread, db_per_grey, source = f
    hetero = contrast + spread >= (MIN_SCORE_DB if min_score_db is None else min_score_db)
    return Echogenicity("ok", CLASSES[int(hetero)], contrast, spread, db_per_grey, source)


def override(result: Echogenicity, cls: str) -> Echogenicity:
    """The user's class replaces the measured one; the features stay for the record."""
    if cls not in CLASSES:
        raise ValueError(f"echogenicity must be one of {CLASSES}, not {cls!r}")
    return Echogenicity("ok", cls, result.contrast_db, result.spread_db, result.db_per_grey, result.db_source,
                        result.reason, overridden=True)
