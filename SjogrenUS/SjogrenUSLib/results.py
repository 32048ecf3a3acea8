"""One patient's SjogrenUS results as one typed model; the MRML table and the CSV row are views of it.

The command line (``sjogrenus score``) and the module logic build the same :class:`PatientResult` from the
images' measurements, corrections change the model (never re-parsed table text), and scores come from its
full-precision values: a mucosa of 0.38004 mm is above a 0.38 mm cut-off in both, although both show 0.3800.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from RheumImagingLib.anatomy import GLAND_SITES, SITES
from RheumImagingLib.stats.flow import qc_text

from .scoring import grade_gland, grading_notes, mucosa_score, totals

#: the MRML table's columns (one row per site, then the totals)
COLUMNS = ("site", "grade", "foci_count", "echogenicity", "thickness_mm", "status", "qc")
TOTAL_ROWS = ("gland_score", "mucosa_score", "modified_score")
#: the CSV row's columns (``sjogrenus score``, read by ``sjogrenus analyze``)
ROW_COLUMNS = ("patient_id", "label", "gland_score", "mucosa_score", "thickness_mm", "modified_score",
               "gland_positive", "modified_positive") + tuple(f"grade_{s}" for s in GLAND_SITES) + (
               "echogenicity", "thickness_median_mm", "thickness_samples", "thickness_status", "thickness_source",
               "scoring_system", "notes", "qc", "spacing_source")
UNAVAILABLE = "unavailable"


@dataclass
class SiteResult:
    """One image's measurements and the user's corrections (values at full precision)."""

    site: str
    grade: int | None = None  # the grade in use (measured, regraded with reader entries, or the user's)
    measured_grade: int | None = None
    diameters_mm: list = field(default_factory=list)
    inhomogeneity: float | None = None
    diffuse_coverage: float | None = None
    gland_reason: str = ""  # why no grade ("" when graded)
    gland_notes: list = field(default_factory=list)  # what the grade assumed
    reader: dict = field(default_factory=dict)  # reader entries for criteria the software does not measure
    thickness_status: str = ""  # "ok" / "unavailable" / "" (not a mucosa image)
    thickness_mm: float | None = None
    thickness_median_mm: float | None = None
    thickness_samples: int = 0
    thickness_reason: str = ""
    thickness_source: str = ""  # "automatic" or "user"
    echogenicity: str | None = None
    measured_echogenicity: str | None = None
    echogenicity_reason: str = ""
    spacing_source: str = ""  # where the spacing used came from: calibrated, user-given, none
    status: str = ""  # what the table's status cell says about this image
    qc: list = field(default_factory=list)  # reasons to distrust this image's result (empty: ok)

    def set_thickness(self, thickness, source: str) -> None:
        """A ``measure.Thickness`` becomes the thickness in use."""
        self.thickness_status, self.thickness_reason = thickness.status, thickness.reason
        self.thickness_mm, self.thickness_median_mm = thickness.mean_mm, thickness.median_mm
        self.thickness_samples, self.thickness_source = thickness.n_samples, source


@dataclass
class PatientResult:
    patient_id: str
    label: object = None
    scoring_system: str = ""
    sites: dict = field(default_factory=dict)  # site -> SiteResult, in the order the images were given
    notes: list = field(default_factory=list)  # about the patient (skipped images, the user's caliper)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "PatientResult":
        return cls(**dict(data, sites={s: SiteResult(**v) for s, v in data["sites"].items()}))


def site_from_image(result, reader: dict | None = None) -> SiteResult:
    """The model of one analysed image (``patient.ImageResult``)."""
    site = SiteResult(result.site, reader=dict(reader or {}), qc=list(getattr(result, "qc", None) or []))
    if result.thickness is not None or result.echo is not None:
        notes = []
        if result.thickness is not None:
            site.set_thickness(result.thickness, "automatic")
            t = result.thickness
            notes.append(f"ok: thickness mean of {t.n_samples} columns (median {t.median_mm:.4f} mm)"
                         if t.status == "ok" else f"{UNAVAILABLE}: {t.reason}")
        echo = result.echo
        if echo is not None and echo.status == "ok":
            site.echogenicity = site.measured_echogenicity = echo.cls
        else:
            site.echogenicity_reason = echo.reason if echo else "not measured"
            notes.append(f"echogenicity {UNAVAILABLE}: {site.echogenicity_reason}")
        site.status = "; ".join(notes)
    gland = result.gland
    if result.site != "mucosa":
        if gland is None or gland.status != "ok":
            site.gland_reason = gland.reason if gland else "not measured"
            site.status = f"{UNAVAILABLE}: {site.gland_reason}"
        else:
            site.grade = site.measured_grade = gland.grade
            site.diameters_mm = [float(d) for d in gland.diameters_mm]
            site.inhomogeneity, site.diffuse_coverage = gland.inhomogeneity, gland.diffuse_coverage
            site.gland_notes = list(gland.notes)
            site.status = "; ".join(["ok"] + site.gland_notes)
    return site


def patient_from_images(patient_id: str, label, results: dict, system: dict, notes=(),
                        thickness_mm: float | None = None, readers: dict | None = None,
                        spacing_sources: dict | None = None) -> PatientResult:
    """The model from ``{site: patient.ImageResult}``; ``thickness_mm``: a caliper reading by the user,
    which replaces the automatic thickness; ``spacing_sources``: {site: calibrated / user-given / none}."""
    from .measure import user_thickness

    patient = PatientResult(patient_id, label, system["name"], notes=list(notes))
    for name, result in results.items():
        patient.sites[name] = site_from_image(result, (readers or {}).get(name))
        patient.sites[name].spacing_source = (spacing_sources or {}).get(name, "")
    mucosa = patient.sites.get("mucosa")
    if thickness_mm is not None:
        if mucosa is None:
            mucosa = patient.sites["mucosa"] = SiteResult("mucosa")
        elif mucosa.thickness_status == "ok":
            patient.notes.append(f"thickness given by the user (automatic: {mucosa.thickness_mm:.4f} mm)")
        mucosa.set_thickness(user_thickness(thickness_mm), "user")
    return patient


# ------------------------------------------------------------------ corrections (on the model)
def override_grade(patient: PatientResult, site: str, grade: int) -> None:
    s = patient.sites[site]
    measured = s.measured_grade
    s.grade = int(grade)
    s.status = f"overridden by user (measured: {'none' if measured is None else measured})"


def override_echogenicity(patient: PatientResult, cls: str) -> None:
    s = patient.sites["mucosa"]
    note = f"echogenicity overridden by user (measured: {s.measured_echogenicity or 'none'})"
    s.echogenicity = cls
    s.status = f"{s.status}; {note}" if s.status else note


def set_line_thickness(patient: PatientResult, thickness) -> None:
    """The user's thickness line (``measure.Thickness``) replaces the thickness; echogenicity notes stay."""
    s = patient.sites["mucosa"]
    s.set_thickness(thickness, "user")
    kept = [n for n in s.status.split("; ") if n.startswith("echogenicity")]
    note = "ok: thickness from the user's line" if thickness.status == "ok" else f"{UNAVAILABLE}: {thickness.reason}"
    s.status = "; ".join([note] + kept)


def set_reader_findings(patient: PatientResult, site: str, entries: dict, system: dict) -> int:
    """The reader's entries for unmeasured criteria; the grade is recomputed from the stored measurements."""
    s = patient.sites[site]
    s.reader = {k: (None if v is None else bool(v)) for k, v in dict(s.reader, **entries).items()}
    findings = {"inhomogeneity": s.inhomogeneity, "diffuse_coverage": s.diffuse_coverage, **s.reader}
    s.grade = grade_gland(s.diameters_mm, system, findings)
    s.status = "; ".join([f"ok: reader findings {json.dumps(s.reader)}"] + grading_notes(system, s.reader))
    return s.grade


# ------------------------------------------------------------------ scores and views
def scores(patient: PatientResult, system: dict) -> dict:
    """Grades, mucosa score and totals, from the model's full-precision values."""
    grades = {s: (patient.sites[s].grade if s in patient.sites else None) for s in GLAND_SITES}
    mucosa = patient.sites.get("mucosa")
    t_mm = mucosa.thickness_mm if mucosa and mucosa.thickness_status == "ok" else None
    echo = mucosa.echogenicity if mucosa else None
    m_score = mucosa_score(t_mm, echo, system) if t_mm is not None and echo is not None else None
    return dict(totals(grades, m_score, system), grades=grades, mucosa_score=m_score, thickness_mm=t_mm,
                echogenicity=echo)


def patient_qc(patient: PatientResult) -> list[str]:
    reasons = []
    for site in patient.sites.values():
        reasons += [f"{site.site}: {q}" for q in site.qc if f"{site.site}: {q}" not in reasons]
    return reasons


def spacing_source(patient: PatientResult) -> str:
    """One spacing source for the patient, or per site where the images differ."""
    sources = {name: s.spacing_source for name, s in patient.sites.items() if s.spacing_source}
    distinct = set(sources.values())
    return next(iter(distinct)) if len(distinct) == 1 else "; ".join(f"{s}: {v}" for s, v in sources.items())


def _cell(value, digits: int = 4) -> str:
    if value is None:
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def table_rows(patient: PatientResult, system: dict) -> list[list[str]]:
    """The MRML table (COLUMNS): one row per site, then the totals."""
    rows = []
    for name in SITES:
        s = patient.sites.get(name)
        if s is None:
            rows.append([name] + [""] * (len(COLUMNS) - 1))
            continue
        thickness = ("" if not s.thickness_status else _cell(s.thickness_mm) if s.thickness_status == "ok"
                     else f"{UNAVAILABLE}: {s.thickness_reason}")
        foci = len(s.diameters_mm) if s.grade is not None and name != "mucosa" else None
        rows.append([name, _cell(s.grade), _cell(foci), s.echogenicity or "", thickness, s.status, qc_text(s.qc)])
    result = scores(patient, system)
    cut = system.get("cutoffs", {})
    missing = [s for s in GLAND_SITES if result["grades"][s] is None]
    gland_why = f"{UNAVAILABLE}: no grade for {', '.join(missing)}" if missing else ""
    mucosa_why = (f"{UNAVAILABLE}: needs thickness in mm and echogenicity of the mucosa image"
                  if result["mucosa_score"] is None else "")
    entries = {
        "gland_score": (result["gland_score"], result["gland_positive"], cut.get("gland_total"), gland_why),
        "mucosa_score": (result["mucosa_score"], None, None, mucosa_why),
        "modified_score": (result["modified_score"], result["modified_positive"], cut.get("modified_total"),
                           gland_why or mucosa_why),
    }
    qc = qc_text(patient_qc(patient))
    for name, (value, positive, cutoff, why) in entries.items():
        if value is None:
            status = why
        elif positive is None:
            status = "ok"
        else:
            status = f"{'positive' if positive else 'negative'} (cut-off >= {cutoff})"
        rows.append([name, _cell(value), "", "", "", status, qc])
    return rows


def csv_row(patient: PatientResult, system: dict) -> dict:
    """The scores CSV row (ROW_COLUMNS); what could not be measured is left empty."""
    result = scores(patient, system)
    mucosa = patient.sites.get("mucosa")
    notes = list(patient.notes)
    if mucosa and mucosa.thickness_status and mucosa.thickness_status != "ok":
        notes.append(f"thickness unavailable: {mucosa.thickness_reason}")
    for name, s in patient.sites.items():
        if name == "mucosa":
            continue
        if s.grade is None:
            notes.append(f"{name}: {s.gland_reason}")
        else:
            notes.extend(f"{name}: {n}" for n in s.gland_notes)
    if "gland" in patient.sites and patient.sites["gland"].grade is not None:
        notes.append(f"gland of unknown side: grade {patient.sites['gland'].grade}")
    t_mm = result["thickness_mm"]
    measured = mucosa is not None and bool(mucosa.thickness_status)
    row = {"patient_id": patient.patient_id, "label": "" if patient.label is None else patient.label,
           "mucosa_score": result["mucosa_score"], "thickness_mm": None if t_mm is None else round(t_mm, 4),
           "echogenicity": result["echogenicity"] if mucosa else None,
           "thickness_median_mm": None if t_mm is None else round(mucosa.thickness_median_mm, 4),
           "thickness_samples": mucosa.thickness_samples if measured else None,
           "thickness_status": mucosa.thickness_status if measured else "no mucosa image",
           "thickness_source": mucosa.thickness_source if measured else "",
           "scoring_system": system["name"], "notes": "; ".join(notes), "qc": qc_text(patient_qc(patient)),
           "spacing_source": spacing_source(patient)}
    row.update({k: result[k] for k in ("gland_score", "modified_score", "gland_positive", "modified_positive")})
    for s in GLAND_SITES:
        row[f"grade_{s}"] = result["grades"][s]
    return {k: ("" if row.get(k) is None else row[k]) for k in ROW_COLUMNS}
