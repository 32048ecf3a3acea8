"""Epithelium echogenicity relative to a reference region, mapped to the study's two classes."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CLASSES = ("homogeneous", "heterogeneous_hyperechoic")
# Calibrated on phantoms (see test_sjogren_measure): homogeneous epithelium has an interdecile range
# of 70-81 grey levels, heterogeneous hyperechoic 90-105 (B-mode is log-compressed, so a grey-level
# spread is a ratio of echo amplitudes and does not depend on gain). Hyperechoic: brighter than the
# reference by at least MIN_RATIO (median over median).
MIN_RATIO = 1.2
SPREAD_THRESHOLD = 85.0


@dataclass
class Echogenicity:
    status: str
    cls: str | None = None
    ratio: float | None = None  # epithelium median / reference median
    spread: float | None = None  # epithelium 90th - 10th percentile (grey levels)
    cv: float | None = None  # epithelium coefficient of variation
    reason: str = ""
    overridden: bool = False


def classify(pixels, labels, layer: int = 1, reference=2) -> Echogenicity:
    """Features of ``layer`` against ``reference`` (a label value, or a boolean mask such as a user ROI)."""
    img = np.asarray(pixels, np.float64)
    lab = np.asarray(labels)
    epi = img[lab == layer]
    ref_mask = lab == reference if np.isscalar(reference) else np.asarray(reference, bool)
    ref = img[ref_mask]
    if epi.size < 20 or ref.size < 20:
        return Echogenicity("unavailable", reason="epithelium or reference region too small (< 20 pixels)")
    ratio = float(np.median(epi) / max(np.median(ref), 1.0))
    spread = float(np.percentile(epi, 90) - np.percentile(epi, 10))
    cv = float(epi.std() / max(epi.mean(), 1e-9))
    hetero = ratio >= MIN_RATIO and spread >= SPREAD_THRESHOLD
    return Echogenicity("ok", CLASSES[int(hetero)], ratio, spread, cv)


def override(result: Echogenicity, cls: str) -> Echogenicity:
    """The user's class replaces the measured one; the features stay for the record."""
    if cls not in CLASSES:
        raise ValueError(f"echogenicity must be one of {CLASSES}, not {cls!r}")
    return Echogenicity("ok", cls, result.ratio, result.spread, result.cv, result.reason, overridden=True)
