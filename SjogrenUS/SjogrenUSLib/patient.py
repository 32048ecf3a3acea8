"""One patient's measurements from up to five images: segment, measure thickness and echogenicity,
grade glands, and sum the scores. Shared by the command line and the Slicer logic (no MRML here)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from RheumImagingLib.stats.flow import qc_text

from . import echogenicity, glands, quality
from .measure import Thickness, layer_thickness, user_thickness
from .scoring import GLAND_SITES, mucosa_score, totals

SITES = ("mucosa",) + GLAND_SITES
ROW_COLUMNS = ("patient_id", "label", "gland_score", "mucosa_score", "thickness_mm", "modified_score",
               "gland_positive", "modified_positive") + tuple(f"grade_{s}" for s in GLAND_SITES) + (
               "echogenicity", "thickness_median_mm", "thickness_samples", "thickness_status", "thickness_source",
               "scoring_system", "qc", "notes")


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
                thickness_mm: float | None = None) -> dict:
    """The scores row (ROW_COLUMNS) for one patient; what could not be measured is left empty.
    ``thickness_mm``: a caliper reading by the user, which replaces the automatic thickness."""
    grades = {s: (results[s].gland.grade if s in results and results[s].gland else None) for s in GLAND_SITES}
    mucosa = results.get("mucosa")
    notes = list(notes)
    thick = mucosa.thickness if mucosa else None
    automatic = thick
    if thickness_mm is not None:
        thick = user_thickness(thickness_mm)
        if automatic is not None and automatic.status == "ok":
            notes.append(f"thickness given by the user (automatic: {automatic.mean_mm:.4f} mm)")
    echo = mucosa.echo if mucosa else None
    t_mm = thick.mean_mm if thick and thick.status == "ok" else None
    e_cls = echo.cls if echo and echo.status == "ok" else None
    if thick and thick.status != "ok":
        notes.append(f"thickness unavailable: {thick.reason}")
    for s, r in results.items():
        if r.gland and r.gland.status != "ok":
            notes.append(f"{s}: {r.gland.reason}")
        elif r.gland:
            notes.extend(f"{s}: {n}" for n in r.gland.notes)
    m_score = mucosa_score(t_mm, e_cls, system) if t_mm is not None and e_cls is not None else None
    row = {"patient_id": patient_id, "label": "" if label is None else label, "mucosa_score": m_score,
           "thickness_mm": None if t_mm is None else round(t_mm, 4), "echogenicity": e_cls,
           "thickness_median_mm": None if t_mm is None else round(thick.median_mm, 4),
           "thickness_samples": thick.n_samples if thick else None,
           "thickness_status": (thick.status if thick else "no mucosa image"),
           "thickness_source": "" if thick is None else ("user" if thickness_mm is not None else "automatic"),
           "scoring_system": system["name"], "notes": "; ".join(notes),
           "qc": qc_text([f"{s}: {reason}" for s, r in results.items() for reason in (r.qc or [])])}
    row.update(totals(grades, m_score, system))
    for s in GLAND_SITES:
        row[f"grade_{s}"] = grades[s]
    if "gland" in results and results["gland"].gland:
        row["notes"] = "; ".join(notes + [f"gland of unknown side: grade {results['gland'].gland.grade}"])
    return {k: ("" if row.get(k) is None else row[k]) for k in ROW_COLUMNS}
