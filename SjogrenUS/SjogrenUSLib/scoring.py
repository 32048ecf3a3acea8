"""Scoring systems as JSON (grade rules, cut-offs) and the mucosa score, totals and classification.

One grading function (``grade_gland``) for every system, the phantom's included. A rule is a list of
conditions that must all hold (``all``) plus, optionally, alternatives of which one must hold
(``any``). Conditions:

- ``{"hypoechoic_areas": {"min_count": n, "min_diameter_mm": d}}``: at least n areas of diameter >= d
  (d defaults to 0: any area);
- ``{"measure": NAME, "min": x}``: a measured gland feature (``inhomogeneity``, ``diffuse_coverage``) at
  least x; an unmeasured feature fails the condition;
- ``{"reader": NAME}``: a criterion the software does not measure (echogenic bands, calcifications),
  entered by the reader as present/absent; when not entered it counts as the system's
  ``criteria[NAME]["when_not_entered"]`` (true or false), and the result says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from RheumImagingLib.anatomy import GLAND_SITES
from RheumImagingLib.errors import InputError

SYSTEMS_DIR = Path(__file__).with_name("scoring_systems")
DEFAULT_SYSTEM = "salaffi_0_4"
#: names used by earlier versions (saved scenes and scripts keep working)
RENAMED = {"hocevar_0_4": "salaffi_0_4"}


def load_system(name_or_path: str | Path = DEFAULT_SYSTEM) -> dict:
    """A scoring system by name (a file in ``scoring_systems/``) or by path to a JSON file."""
    name_or_path = RENAMED.get(str(name_or_path), name_or_path)
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
    for key in ("name", "rules"):
        if key not in system:
            raise InputError(p, f"scoring system lacks '{key}'")
    for rule in system["rules"]:
        for cond in rule.get("all", []) + rule.get("any", []):
            reader = cond.get("reader")
            if reader is not None and reader not in system.get("criteria", {}):
                raise InputError(p, f"rule for grade {rule.get('grade')} uses reader criterion '{reader}' "
                                    "that 'criteria' does not declare")
    return system


def reader_criteria(system: dict) -> list[str]:
    """The criteria of ``system`` a reader enters (the software does not measure them)."""
    return [k for k, v in system.get("criteria", {}).items() if not v.get("measured", True)]


def _holds(cond: dict, d: np.ndarray, findings: dict, system: dict) -> bool:
    if "hypoechoic_areas" in cond:
        spec = cond["hypoechoic_areas"]
        return int(np.sum(d >= spec.get("min_diameter_mm", 0.0))) >= spec["min_count"]
    if "measure" in cond:
        value = findings.get(cond["measure"])
        return value is not None and value >= cond["min"]
    if "reader" in cond:
        value = findings.get(cond["reader"])
        if value is None:
            return bool(system["criteria"][cond["reader"]]["when_not_entered"])
        return bool(value)
    raise ValueError(f"scoring system {system['name']}: unknown condition {cond}")


def grade_gland(diameters_mm, system: dict, findings: dict | None = None) -> int:
    """The first rule (highest grade first) whose conditions hold, from the hypoechoic areas'
    diameters (mm) and ``findings`` (measured features and reader entries by criterion name)."""
    d = np.asarray(list(diameters_mm), dtype=np.float64)
    findings = findings or {}
    for rule in system["rules"]:
        if all(_holds(c, d, findings, system) for c in rule.get("all", [])) and (
                not rule.get("any") or any(_holds(c, d, findings, system) for c in rule["any"])):
            return int(rule["grade"])
    raise ValueError(f"scoring system {system['name']} has no catch-all grade")


def grading_notes(system: dict, findings: dict | None = None) -> list[str]:
    """What the grade assumed: each reader criterion not entered, and how it was counted."""
    findings = findings or {}
    return [f"{name} not entered by a reader (counted as {'present' if spec['when_not_entered'] else 'absent'})"
            for name, spec in system.get("criteria", {}).items()
            if not spec.get("measured", True) and findings.get(name) is None]


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
