"""One patient's measurements from up to five images: segment, measure thickness and echogenicity,
grade glands, and sum the scores. Shared by the command line and the Slicer logic (no MRML here)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import echogenicity, glands, quality
from .measure import Thickness, layer_thickness
from .results import ROW_COLUMNS, SITES  # noqa: F401 (re-exported: the CSV columns, the sites)


@dataclass
class ImageResult:
    """What one image gave; ``site`` "mucosa", one of GLAND_SITES, or "gland" when the side is unknown."""

    site: str
    labels: np.ndarray
    spacing_mm: tuple | None
    thickness: Thickness | None = None
    echo: echogenicity.Echogenicity | None = None
    gland: glands.GlandResult | None = None
    qc: list[str] | None = None  # why the segmentation is not trusted ([] plausible; None: labels given, not predicted)


def guess_site(labels: np.ndarray) -> str:
    """For an image given without a site: mucosa if the segmenter found more epithelium than parenchyma."""
    return "mucosa" if np.sum(labels == 1) > np.sum(labels == 3) else "gland"


def analyse_image(site: str | None, pixels, spacing_mm, segmenter, system: dict, labels=None,
                  reader: dict | None = None, metadata: dict | None = None) -> ImageResult:
    """Segment (unless ``labels`` are given) and measure one image by its site; ``reader``: a gland's
    reader-entered criteria (scoring.reader_criteria); ``metadata``: the file's (imageio), for quality control
    of a predicted segmentation (:mod:`.quality`)."""
    pixels = np.asarray(pixels)
    predicted = labels is None
    if predicted:
        labels = segmenter.predict(pixels)
    site = site or guess_site(labels)
    r = ImageResult(site, labels, spacing_mm)
    if predicted:
        r.qc = quality.image_reasons(labels, site, getattr(segmenter, "plausibility", None), spacing_mm, metadata)
    if site == "mucosa":
        r.thickness = layer_thickness(labels, spacing_mm)
        r.echo = echogenicity.classify(pixels, labels)
    else:
        r.gland = glands.grade_image(pixels, labels, spacing_mm, system, reader)
    return r


def patient_row(patient_id: str, label, results: dict, system: dict, notes=(),
                thickness_mm: float | None = None, spacing_sources: dict | None = None) -> dict:
    """The scores row (ROW_COLUMNS) for one patient, rendered from the one results model
    (``results.patient_from_images``); ``thickness_mm``: a caliper reading by the user."""
    from .results import csv_row, patient_from_images

    patient = patient_from_images(patient_id, label, results, system, notes, thickness_mm,
                                  spacing_sources=spacing_sources)
    return csv_row(patient, system)
