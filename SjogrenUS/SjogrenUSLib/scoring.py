"""Scoring systems as JSON (grade rules, cut-offs) and the mucosa score, totals and classification."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from RheumImagingLib.errors import InputError

SYSTEMS_DIR = Path(__file__).with_name("scoring_systems")
DEFAULT_SYSTEM = "hocevar_0_4"
GLAND_SITES = ("parotid_left", "parotid_right", "submandibular_left", "submandibular_right")


def load_system(name_or_path: str | Path = DEFAULT_SYSTEM) -> dict:
    """A scoring system by name (a file in ``scoring_systems/``) or by path to a JSON file."""
    p = Path(name_or_path)
    if not p.suffix:
        p = SYSTEMS_DIR / f"{name_or_path}.json"
    if not p.is_file():
        known = ", ".join(sorted(f.stem for f in SYSTEMS_DIR.glob("*.json")))
        raise InputError(p, f"no such scoring system (known: {known})")
    try:
        system = json.loads(p.read_text())
    except ValueError as e:
        raise InputError(p, f"not valid JSON: {e}") from None
    for key in ("name", "focus_size_classes_mm", "rules"):
        if key not in system:
            raise InputError(p, f"scoring system lacks '{key}'")
    return system


def grade_gland(diameters_mm, system: dict) -> int:
    """The first rule (highest grade first) whose minimum counts of foci by size class hold."""
    d = np.asarray(list(diameters_mm), dtype=np.float64)
    small_max = system["focus_size_classes_mm"]["small"][1]
    large_min = system["focus_size_classes_mm"]["large"][0]
    counts = {"min_large": int(np.sum(d >= large_min)), "min_medium_or_larger": int(np.sum(d >= small_max)),
              "min_any": int(d.size)}
    for rule in system["rules"]:
        if all(counts[k] >= v for k, v in rule.items() if k in counts):
            return int(rule["grade"])
    raise ValueError(f"scoring system {system['name']} has no catch-all grade")


def mucosa_score(thickness_mm: float | None, echogenicity: str | None, system: dict) -> int:
    """0-2: +1 for epithelium at or below the cut-off, +1 for heterogeneous hyperechoic epithelium.
    An unmeasured part contributes 0."""
    cut = system.get("mucosa", {}).get("thickness_cutoff_mm", 0.38)
    score = int(thickness_mm is not None and thickness_mm <= cut)
    return score + int(echogenicity == "heterogeneous_hyperechoic")


def totals(grades: dict, mucosa: int | None, system: dict) -> dict:
    """Gland total, modified total (gland + mucosa) and the classification at the system's cut-offs
    (positive if total >= cut-off). Missing glands make the totals None, never a partial sum."""
    complete = all(grades.get(s) is not None for s in GLAND_SITES)
    gland = int(sum(grades[s] for s in GLAND_SITES)) if complete else None
    modified = gland + mucosa if gland is not None and mucosa is not None else None
    cut = system.get("cutoffs", {})
    out = {"gland_score": gland, "modified_score": modified}
    out["gland_positive"] = None if gland is None or "gland_total" not in cut else int(gland >= cut["gland_total"])
    out["modified_positive"] = (None if modified is None or "modified_total" not in cut
                                else int(modified >= cut["modified_total"]))
    return out
