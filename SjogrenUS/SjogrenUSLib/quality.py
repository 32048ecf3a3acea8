"""Quality control of ultrasound segmentations: is a predicted label map one the training made plausible?

Why: the network labels any picture, a radiograph included, and the measurements downstream (thickness, gland
grade) would still produce numbers. Instead, each trained bundle carries what its segmentations should look like
(``models/plausibility.json``, fitted by :func:`fit` at training time): per site kind (mucosa, gland) the range of
a few shape features over the training label maps and over the trained network's own predictions on the
validation images (patients it did not train on). The predictions count because the network's outlines are not
drawn ones: its epithelium has gaps and its parenchyma a rougher outline where the labels have none, and ranges
from the labels alone flagged 14 of 30 held-out demo patients (bundle docs/README.md, "Quality control"). At
scoring, :func:`check` gives the reasons a prediction falls outside them ("layer not found", "gland not found",
"segmentation implausible: ..."); the score row's ``qc`` joins them.

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
#: Each range is the minimum to maximum over the training labels and the held-out predictions, widened on both
#: sides by MARGIN times its width, at least by FLOOR (by the feature's name ending). Calibrated on phantom seeds
#: other than the demo's held-out seed and those the tests check (bundle docs/README.md, "Quality control").
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
        out["parenchyma_solidity"] = float(gland.sum() / max(convex_hull_pixels(gland), 1))
    return out


def convex_hull_pixels(mask) -> int:
    """How many pixels skimage's ``convex_hull_image(mask)`` holds (the pixel centres inside or on the convex hull
    of the mask's pixel squares' edge midpoints), counted row by row in exact integer arithmetic instead of testing
    every pixel against the polygon (5 ms of each gland image's quality control, issue 17)."""
    from scipy.spatial import ConvexHull

    mask = np.asarray(mask, bool)
    rows = np.flatnonzero(mask.any(axis=1))
    first = mask[rows].argmax(axis=1)
    last = mask.shape[1] - 1 - mask[rows, ::-1].argmax(axis=1)
    # Coordinates doubled, so that the edge midpoints (row +- 1/2, col +- 1/2) are integers; the row's first and
    # last pixels span the hull of the whole row.
    r, c = np.concatenate([rows, rows]) * 2, np.concatenate([first, last]) * 2
    points = np.concatenate([np.stack([r + dr, c + dc], axis=1) for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1))])
    # Unique points in numpy's row order from one integer key each (np.unique(axis=0) sorts rows as records,
    # 0.6 ms of a gland image); coordinates are shifted by one so that the key's parts are non-negative.
    width = 2 * mask.shape[1] + 3
    key = np.unique((points[:, 0] + 1) * width + points[:, 1] + 1)
    points = np.stack([key // width - 1, key % width - 1], axis=1)
    corners = points[ConvexHull(points).vertices].astype(np.int64)  # exact: qhull returns input points
    start, step = corners, np.roll(corners, -1, axis=0) - corners
    # Inside or on the boundary of the convex polygon: the same side of every edge (sign of the cross product).
    side = np.sign(np.sum(start[:, 0] * np.roll(start[:, 1], -1) - start[:, 1] * np.roll(start[:, 0], -1)))
    # Per edge and pixel row y: side * (step_r * (2x - start_c) - step_c * (2y - start_r)) >= 0, i.e. a * x >= b.
    y = np.arange(rows[0], rows[-1] + 1)
    a = (side * 2 * step[:, 0])[:, None]
    b = side * (step[:, 0, None] * start[:, 1, None] + step[:, 1, None] * (2 * y[None] - start[:, 0, None]))
    big = mask.shape[1]
    low = np.where(a > 0, -(-b // np.where(a > 0, a, 1)), 0).max(axis=0)
    high = np.where(a < 0, b // np.where(a < 0, a, 1), big - 1).min(axis=0)
    empty = ((a == 0) & (b > 0)).any(axis=0)
    span = np.minimum(high, big - 1) - np.maximum(low, 0) + 1
    return int(np.where(empty, 0, np.maximum(span, 0)).sum())


def predictions(segmenter, images):
    """(predicted label map, site, spacing) for each (image, site, spacing) of ``images``: what the trained network
    draws on images it did not train on, for :func:`fit`."""
    for pixels, site, spacing_mm in images:
        yield segmenter.predict(pixels), site, spacing_mm


def fit(items, bundle_version: str = "", predicted=()) -> dict:
    """The plausibility model from the training label maps, ``items`` of (label map, site, spacing_mm or None),
    and the network's ``predicted`` label maps of held-out images (same tuples)."""
    values: dict[str, dict[str, dict[str, list[float]]]] = {}
    counts: dict[str, dict[str, int]] = {}
    for source, maps in (("training", items), ("predicted", predicted)):
        for labels, site, spacing_mm in maps:
            kind = site_kind(site)
            counts.setdefault(source, {}).setdefault(kind, 0)
            counts[source][kind] += 1
            for name, value in features(labels, kind, spacing_mm).items():
                values.setdefault(kind, {}).setdefault(name, {}).setdefault(source, []).append(value)
    ranges = {}
    for kind, by_name in values.items():
        ranges[kind] = {}
        for name, by_source in by_name.items():
            seen = [v for found in by_source.values() for v in found]
            lo, hi = float(min(seen)), float(max(seen))
            widen = max(MARGIN * (hi - lo), next(v for end, v in FLOOR.items() if name.endswith(end)))
            ranges[kind][name] = {"low": lo - widen, "high": hi + widen, "seen_min": lo, "seen_max": hi}
            for source, found in by_source.items():
                ranges[kind][name].update({f"{source}_min": float(min(found)), f"{source}_max": float(max(found)),
                                           f"n_{source}": len(found)})
    return {"description": "ranges of segmentation features over the training label maps and the network's "
                           f"predictions on held-out images, widened by {MARGIN} x their width (at least {FLOOR}); "
                           "SjogrenUSLib.quality",
            "bundle_version": bundle_version, "n_images": counts.get("training", {}),
            "n_predicted": counts.get("predicted", {}), "ranges": ranges}


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
    outside = [f"{name} {found[name]:.3g} (training {_seen(r, 'min'):.3g}-{_seen(r, 'max'):.3g})"
               for name, r in ranges.items() if name in found and not r["low"] <= found[name] <= r["high"]]
    if kind == "mucosa" and "epithelium_above_submucosa" not in found:
        outside.append("epithelium and submucosa in no common column")
    return [f"segmentation implausible: {', '.join(outside)}"] if outside else []


def _seen(feature_range: dict, end: str) -> float:
    """The learnt range's end (a model fitted before predictions were learnt has the labels' only)."""
    return feature_range.get(f"seen_{end}", feature_range[f"training_{end}"])


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
