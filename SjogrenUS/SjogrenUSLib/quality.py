"""Quality control of ultrasound segmentations: is a predicted label map one the training labels make plausible?

Why: the network labels any picture, a radiograph included, and the measurements downstream (thickness, gland
grade) would still produce numbers. Instead, each trained bundle carries what its training labels looked like
(``models/plausibility.json``, fitted by :func:`fit` at training time): per site kind (mucosa, gland) the range of
a few shape features. At scoring, :func:`check` gives the reasons a prediction falls outside them ("layer not
found", "gland not found", "segmentation implausible: ..."); the score row's ``qc`` joins them.

Features are fractions of the image or ratios, so they do not depend on the pixel size; the epithelium thickness is
also checked in mm, but only where both the training images and the scored image are calibrated (mm only from a
real or user-given calibration).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from RheumImagingLib.errors import InputError

FILENAME = "plausibility.json"
#: Each range is the training minimum to maximum widened on both sides by MARGIN times its width, at least by
#: FLOOR (by the feature's name ending). Calibrated on phantom seeds other than those the tests check (bundle
#: docs/README.md, "Quality control"): the network's parenchyma has a rougher outline than a drawn one (solidity
#: 0.84-0.95 predicted against 0.99 in the labels), hence the solidity's wider floor.
MARGIN = 0.5
FLOOR = {"_mm": 0.05, "_solidity": 0.2, "": 0.02}
#: Modalities the network was made for (DICOM Modality); an image of another modality is not segmented.
ULTRASOUND_MODALITIES = ("US",)

EPITHELIUM, SUBMUCOSA, PARENCHYMA = 1, 2, 3


def site_kind(site: str) -> str:
    """``mucosa`` for the buccal mucosa, ``gland`` for the four glands (or a gland of unknown side)."""
    return "mucosa" if site == "mucosa" else "gland"


def features(labels, kind: str, spacing_mm=None) -> dict[str, float]:
    """Shape features of the labels a site's measurement reads, from one label map (rows, cols; 0-3, a focus 4
    counts as parenchyma).

    Mucosa (thickness and echogenicity read the epithelium and the submucosa): their area fractions, the share
    of columns the epithelium spans (continuity), its median thickness as a share of the image height (and in mm
    when ``spacing_mm`` is given), and the share of columns in which it lies above the submucosa. Gland (the grade
    reads the parenchyma): its area fraction, lateral extent and solidity (area / convex hull area). Other labels
    are not checked: the network's parenchyma below a mucosa, for instance, is read by nothing."""
    labels = np.asarray(labels)
    labels = np.where(labels == 4, PARENCHYMA, labels)
    rows = labels.shape[0]
    if kind == "mucosa":
        epi, sub = labels == EPITHELIUM, labels == SUBMUCOSA
        out = {"epithelium_fraction": float(epi.mean()), "submucosa_fraction": float(sub.mean())}
        columns = epi.any(axis=0)
        out["epithelium_continuity"] = float(columns.mean())
        thickness = np.median(epi[:, columns].sum(axis=0)) if columns.any() else 0.0
        out["epithelium_thickness_fraction"] = float(thickness / rows)
        if spacing_mm is not None:
            out["epithelium_thickness_mm"] = float(thickness * spacing_mm[0])
        both = columns & sub.any(axis=0)
        if both.any():
            depth = np.arange(rows)[:, None]
            epi_row = (depth * epi[:, both]).sum(axis=0) / epi[:, both].sum(axis=0)
            sub_row = (depth * sub[:, both]).sum(axis=0) / sub[:, both].sum(axis=0)
            out["epithelium_above_submucosa"] = float(np.mean(epi_row < sub_row))
        return out
    gland = labels == PARENCHYMA
    out = {"parenchyma_fraction": float(gland.mean()), "parenchyma_extent": float(gland.any(axis=0).mean())}
    if gland.any():
        from skimage.morphology import convex_hull_image

        rows, cols = np.flatnonzero(gland.any(axis=1)), np.flatnonzero(gland.any(axis=0))
        box = gland[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]  # the hull lies within: the same pixels, fewer tested
        out["parenchyma_solidity"] = float(gland.sum() / max(convex_hull_image(box).sum(), 1))
    return out


def fit(items, bundle_version: str = "") -> dict:
    """The plausibility model from training label maps: ``items`` of (label map, site, spacing_mm or None)."""
    values: dict[str, dict[str, list[float]]] = {}
    counts: dict[str, int] = {}
    for labels, site, spacing_mm in items:
        kind = site_kind(site)
        counts[kind] = counts.get(kind, 0) + 1
        for name, value in features(labels, kind, spacing_mm).items():
            values.setdefault(kind, {}).setdefault(name, []).append(value)
    ranges = {}
    for kind, by_name in values.items():
        ranges[kind] = {}
        for name, seen in by_name.items():
            lo, hi = float(min(seen)), float(max(seen))
            widen = max(MARGIN * (hi - lo), next(v for end, v in FLOOR.items() if name.endswith(end)))
            ranges[kind][name] = {"training_min": lo, "training_max": hi, "low": lo - widen, "high": hi + widen,
                                  "n_images": len(seen)}
    return {"description": "ranges of segmentation features over the training label maps, widened by "
                           f"{MARGIN} x their width (at least {FLOOR}); SjogrenUSLib.quality",
            "bundle_version": bundle_version, "n_images": counts, "ranges": ranges}


def check(labels, site: str, model: dict, spacing_mm=None) -> list[str]:
    """Why a predicted label map is not plausible for its site (empty list: plausible)."""
    kind = site_kind(site)
    found = features(labels, kind, spacing_mm)
    if kind == "mucosa":
        missing = [name for name in ("epithelium", "submucosa") if found[f"{name}_fraction"] == 0]
        if missing:
            return [f"layer not found ({', '.join(missing)})"]
    elif found["parenchyma_fraction"] == 0:
        return ["gland not found"]
    ranges = model.get("ranges", {}).get(kind)
    if not ranges:
        return [f"segmentation not checked: the bundle's training labels had no {kind} image"]
    outside = [f"{name} {found[name]:.3g} (training {r['training_min']:.3g}-{r['training_max']:.3g})"
               for name, r in ranges.items() if name in found and not r["low"] <= found[name] <= r["high"]]
    if kind == "mucosa" and "epithelium_above_submucosa" not in found:
        outside.append("epithelium and submucosa in no common column")
    return [f"segmentation implausible: {', '.join(outside)}"] if outside else []


def modality_reason(metadata: dict | None) -> str | None:
    """A reason when the file says it is not ultrasound (DICOM Modality); None for US or unknown (PNG, JPEG)."""
    modality = (metadata or {}).get("Modality")
    if modality and str(modality).upper() not in ULTRASOUND_MODALITIES:
        return f"not an ultrasound image (DICOM modality {modality})"
    return None


def write(model: dict, bundle_dir) -> Path:
    path = Path(bundle_dir) / "models" / FILENAME
    path.write_text(json.dumps(model, indent=1))
    return path


def load(bundle_dir) -> dict | None:
    """The bundle's plausibility model, None when it has none (a bundle trained before quality control)."""
    path = Path(bundle_dir) / "models" / FILENAME
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(path, f"unreadable plausibility model ({exc})") from None


def image_reasons(labels, site: str, model: dict | None, spacing_mm=None, metadata: dict | None = None) -> list[str]:
    """All qc reasons for one scored image: the file's modality, then the plausibility of its segmentation."""
    reasons = [r for r in (modality_reason(metadata),) if r]
    if model is None:
        return reasons + [f"segmentation not checked: the bundle has no models/{FILENAME} (retrain it)"]
    return reasons + check(labels, site, model, spacing_mm)
