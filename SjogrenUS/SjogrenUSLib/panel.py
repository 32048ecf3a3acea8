"""The SjogrenUS panel's decisions, Qt-free so that pytest covers them; the widget only mirrors them."""

from __future__ import annotations

from .results import PatientResult, SiteResult

#: site -> UI/parameter name prefix of its volume selector, in the table's site order.
SITE_PARAMETERS = {
    "mucosa": "mucosa",
    "parotid_left": "parotidLeft",
    "parotid_right": "parotidRight",
    "submandibular_left": "submandibularLeft",
    "submandibular_right": "submandibularRight",
}


def chosen_volumes(parameter_node) -> dict:
    """{site: volume node} for each site whose selector holds a volume."""
    if parameter_node is None:
        return {}
    volumes = {site: getattr(parameter_node, f"{name}Volume") for site, name in SITE_PARAMETERS.items()}
    return {site: volume for site, volume in volumes.items() if volume is not None}


def correction_controls(patient: PatientResult) -> tuple[dict, str | None]:
    """What the correction controls show: the grade of each graded gland, the mucosa's echogenicity."""
    grades = {site: s.grade for site, s in patient.sites.items() if site != "mucosa" and s.grade is not None}
    mucosa = patient.sites.get("mucosa")
    return grades, (mucosa.echogenicity if mucosa else None)


def pending_corrections(patient: PatientResult, grades: dict, echogenicity: str | None):
    """The grades and echogenicity the user changed, for sites that were imaged and measured.

    ``grades`` is the panel's grade per gland. A gland that was never imaged (or got no grade) has no row
    to correct: its spin box (always some number) is not a grade the user gave, so it is ignored.
    Returns ``({site: grade}, echogenicity or None)``.
    """
    sites = patient.sites
    changed = {site: int(grade) for site, grade in grades.items()
               if site in sites and sites[site].measured_grade is not None and int(grade) != sites[site].grade}
    mucosa = sites.get("mucosa", SiteResult("mucosa"))
    echo = (echogenicity if mucosa.measured_echogenicity and echogenicity and echogenicity != mucosa.echogenicity
            else None)
    return changed, echo


def work_task(inputs: dict, scoring_system: str, bundle) -> tuple[dict, dict]:
    """``(task, arrays)`` for ``SjogrenUSLib.work_cli`` from ``logic.prepare_patient``'s {site: (pixels, spacing)}."""
    task = {"scoring_system": scoring_system, "bundle": str(bundle) if bundle else "",
            "spacing_mm": {site: (list(spacing) if spacing else None) for site, (_, spacing) in inputs.items()}}
    return task, {site: pixels for site, (pixels, _) in inputs.items()}


def measured_from_result(result: dict, arrays: dict) -> dict:
    """``{site: (labels, SiteResult)}`` for ``logic.apply_patient`` from a finished work_cli run."""
    return {site: (arrays[site], SiteResult(**values)) for site, values in result["sites"].items()}


def add_to_cohort(logic, volumes: dict, cohort_dir, *, patient_id: str, label: str, cohort_module=None) -> list:
    """Each imaged site's image and segmentation as they are now into the training cohort (Contract E)."""
    from RheumImagingLib.widget_support import COHORT_LABELS, cohort_folder, training_cohort

    folder = cohort_folder(cohort_dir)
    segmented = {site: logic.segmentation_node(v) for site, v in volumes.items() if logic.segmentation_node(v)}
    if not segmented:
        raise ValueError("no image has a segmentation yet: Apply first, then correct the segments if needed")
    module = cohort_module or training_cohort()
    return [module.add_ultrasound(folder, volume_node=volumes[site], segmentation_node=seg, patient_id=patient_id,
                                  site=site, label=COHORT_LABELS[label], file_for_instance=logic.file_for_instance)
            for site, seg in segmented.items()]
