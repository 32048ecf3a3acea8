"""SjogrenUS logic on an MRML scene given by the caller (Slicer's or a test's).

Up to five ultrasound images of one patient (buccal mucosa and the four major glands) ->
per image a segmentation node (epithelium, submucosa, parenchyma), for the mucosa a markups
line across the epithelium at its median-thickness column, and one table node per patient
with a row per site and the totals. The table is the record: grades, echogenicity and
thickness are read back from it when the user corrects one, so corrections survive a saved
and reloaded scene. Every node carries provenance attributes and sits under the patient in
the subject hierarchy; each volume references its results.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import numpy as np
import vtk

from RheumImagingLib.errors import InputError
from RheumImagingLib.geometry import control_points_ras, pixel_to_ras, set_control_points_ras
from RheumImagingLib.scene import place_under_patient, provenance, set_provenance, table_row

from . import echogenicity as echo_mod
from .measure import line_length_mm
from .patient import SITES, analyse_image
from .scoring import DEFAULT_SYSTEM, GLAND_SITES, load_system, mucosa_score, totals

#: label value -> (segment name, colour); the segmenter's labels (segmentation.LABELS).
SEGMENTS = {1: ("epithelium", (0.95, 0.75, 0.2)), 2: ("submucosa", (0.3, 0.6, 1.0)),
            3: ("parenchyma", (0.35, 0.85, 0.35))}
COLUMNS = ("site", "grade", "foci_count", "echogenicity", "thickness_mm", "status")
TOTAL_ROWS = ("gland_score", "mucosa_score", "modified_score")

_SEG_ROLE = "SjogrenUS.Segmentation"
_LINE_ROLE = "SjogrenUS.ThicknessLine"
_TABLE_ROLE = "SjogrenUS.Scores"
_VOLUME_ROLE = "SjogrenUS.Volume.{site}"
_PATIENT_ATTR = "SjogrenUS.PatientID"
_SITE_ATTR = "SjogrenUS.Site"
_FINDINGS_ATTR = "SjogrenUS.Findings.{site}"  # measured gland features (JSON), for regrading
_READER_ATTR = "SjogrenUS.Reader.{site}"  # the reader's entries for unmeasured criteria (JSON)
UNAVAILABLE = "unavailable"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _fmt(value, digits: int = 4) -> str:
    if value is None:
        return ""
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


class SjogrenUSLogic:
    """Works on ``scene``; the Slicer module hands it ``slicer.mrmlScene``.

    ``segmenter`` is a :class:`SjogrenUSLib.segmentation.USSegmenter` (network loaded once);
    ``system`` a scoring-system name or JSON path (``scoring_systems/``).
    """

    def __init__(self, scene, segmenter=None, system: str = DEFAULT_SYSTEM, file_for_instance=None):
        self.scene = scene
        self.segmenter = segmenter
        #: instance UID -> file, for volumes from Slicer's DICOM browser (``slicer.dicomDatabase.fileForInstance``)
        self.file_for_instance = file_for_instance
        self.system_ref = str(system)
        self.system = load_system(system)

    def load_ultrasound(self, path, frame: int | None = None):
        """Load a B-mode ultrasound image (DICOM US, PNG, TIFF) as a volume node with its calibration."""
        from RheumImagingLib.imageio import load_volume

        return load_volume(self.scene, path, frame=frame)

    def adopt_dicom_source(self, volume) -> bool:
        """Calibration (ultrasound regions too), age and sex of a DICOM-browser volume, read from its file."""
        from RheumImagingLib.imageio import adopt_dicom_source

        return adopt_dicom_source(volume, self.file_for_instance)

    def load_segmenter(self, bundle_dir=None, device: str = "cpu"):
        """Load the trained ``sjogren_us_segmentation`` bundle once; reused for every image."""
        from .segmentation import BUNDLE_DIR, USSegmenter

        bundle = Path(bundle_dir) if bundle_dir else BUNDLE_DIR
        if not (bundle / "models" / "model.pt").is_file():
            raise InputError(bundle, "no trained weights (models/model.pt): train it first ('Train from a cohort' in "
                                     "the SjogrenUS module, or 'sjogrenus train' on the command line)")
        if self.segmenter is None or Path(self.segmenter.bundle.root).resolve() != bundle.resolve():
            self.segmenter = USSegmenter(bundle, device=device)
        return self.segmenter

    def set_system(self, system: str) -> None:
        self.system_ref = str(system)
        self.system = load_system(system)

    # ------------------------------------------------------------------ processing
    def process_patient(self, volumes: dict, patient_id: str, label=None, progress=None):
        """Segment, measure and grade each site's volume once; returns the patient's table node."""
        from RheumImagingLib.imageio import array_from_volume, spacing_mm

        unknown = set(volumes) - set(SITES)
        if unknown:
            raise ValueError(f"unknown site(s) {sorted(unknown)}; sites are {', '.join(SITES)}")
        volumes = {s: v for s, v in volumes.items() if v is not None}
        if not volumes:
            raise ValueError("no image given: pass at least one of " + ", ".join(SITES))
        if self.segmenter is None:
            self.load_segmenter()
        report = progress or (lambda stage, fraction: None)
        for volume in volumes.values():
            self.adopt_dicom_source(volume)
        base = dict(self.segmenter.provenance(), scoring_system=self.system["name"],
                    scoring_system_source=self.system_ref, time=_now(), patient_id=patient_id)
        table = self._table_node(patient_id, volumes)
        set_provenance(table, **base, label=label)
        place_under_patient(self.scene, table, patient_id, near=next(iter(volumes.values())))
        for k, (site, volume) in enumerate(volumes.items()):
            report(f"Segmenting and measuring {site}", k / len(volumes))
            info = dict(base, input=volume.GetAttribute("RheumImaging.SourceFile") or volume.GetName(), site=site)
            pixels = array_from_volume(volume).astype(np.float32)
            result = analyse_image(site, pixels, spacing_mm(volume), self.segmenter, self.system)
            volume.SetAttribute(_SITE_ATTR, site)
            volume.SetAttribute(_PATIENT_ATTR, patient_id)
            volume.SetNodeReferenceID(_TABLE_ROLE, table.GetID())
            table.SetNodeReferenceID(_VOLUME_ROLE.format(site=site), volume.GetID())
            place_under_patient(self.scene, volume, patient_id, near=volume)
            seg = self._segmentation_node(volume, result.labels, info)
            place_under_patient(self.scene, seg, patient_id, near=volume)
            if site == "mucosa":
                line = self._thickness_line(volume, result.labels, info)
                place_under_patient(self.scene, line, patient_id, near=volume)
                self._write_mucosa_row(table, result.thickness, result.echo)
            else:
                self._write_gland_row(table, site, result.gland)
        self._write_totals(table)
        report("Done", 1.0)
        return table

    # ------------------------------------------------------------------ corrections
    def remeasure(self, volume, labels=None):
        """Measure one image again from its segmentation node, e.g. after the user corrected the masks
        in the Segment Editor (``labels``, if given, first replace the node's segments)."""
        from RheumImagingLib.imageio import array_from_volume, spacing_mm

        table, seg = self.table_node(volume), self.segmentation_node(volume)
        site = volume.GetAttribute(_SITE_ATTR)
        if table is None or seg is None or site not in SITES:
            raise ValueError(f"{volume.GetName()} has no SjogrenUS results to update; run process_patient first")
        info = dict(provenance(seg), time=_now(), edited="true")
        if labels is not None:
            self._segmentation_node(volume, np.asarray(labels), info)
        labels = self.labels_from_segmentation(volume)
        pixels = array_from_volume(volume).astype(np.float32)
        reader = json.loads(table.GetAttribute(_READER_ATTR.format(site=site)) or "{}")
        result = analyse_image(site, pixels, spacing_mm(volume), None, self._system_of(table), labels=labels,
                               reader=reader or None)
        set_provenance(seg, edited="true", time=info["time"])
        row = table_row(table, site)
        for col in range(1, len(COLUMNS)):
            table.SetCellText(row, col, "")
        if site == "mucosa":
            line = self.line_node(volume)
            caliper = line is not None and provenance(line).get("edited") == "true"
            if not caliper:
                self._thickness_line(volume, labels, info)
            self._write_mucosa_row(table, result.thickness, result.echo)
            if caliper:  # the user's caliper line wins over the automatic thickness
                set_provenance(table, edited="true", time=info["time"])
                self.update_from_line(volume)
                return result
        else:
            self._write_gland_row(table, site, result.gland)
        set_provenance(table, edited="true", time=info["time"])
        self._write_totals(table)
        return result

    def set_reader_findings(self, table_or_patient, site: str, **entries):
        """The reader's entries for a gland's criteria the software does not measure (e.g.
        ``echogenic_bands=True``, ``calcifications=False``; None clears one); the grade is recomputed
        from the stored measurements and these entries, and totals follow."""
        from .scoring import grade_gland, grading_notes, reader_criteria

        table = self._resolve_table(table_or_patient)
        system = self._system_of(table)
        allowed = reader_criteria(system)
        unknown = sorted(set(entries) - set(allowed))
        if site not in GLAND_SITES or unknown:
            raise ValueError(f"site must be one of {GLAND_SITES} and criteria among {allowed}; "
                             f"got {site!r}, {unknown}")
        stored = table.GetAttribute(_FINDINGS_ATTR.format(site=site))
        if not stored:
            raise ValueError(f"{site} has no measured grade to update; run process_patient first")
        reader = dict(json.loads(table.GetAttribute(_READER_ATTR.format(site=site)) or "{}"), **entries)
        reader = {k: (None if v is None else bool(v)) for k, v in reader.items()}
        table.SetAttribute(_READER_ATTR.format(site=site), json.dumps(reader))
        measured = json.loads(stored)
        grade = grade_gland(measured.pop("diameters_mm"), system, dict(measured, **reader))
        row = table_row(table, site)
        table.SetCellText(row, COLUMNS.index("grade"), str(grade))
        notes = grading_notes(system, reader)
        status = "; ".join([f"ok: reader findings {json.dumps(reader)}"] + notes)
        table.SetCellText(row, COLUMNS.index("status"), status)
        set_provenance(table, edited="true", time=_now())
        self._write_totals(table)
        return grade

    def override_grade(self, table_or_patient, site: str, grade: int):
        """The user's grade replaces the measured one; totals follow."""
        table = self._resolve_table(table_or_patient)
        if site not in GLAND_SITES:
            raise ValueError(f"site must be one of {GLAND_SITES}, not {site!r}")
        low, high = self.system.get("grade_range", [0, 4])
        if int(grade) != grade or not low <= grade <= high:
            raise ValueError(f"grade must be an integer {low}-{high} in {self.system['name']}, not {grade!r}")
        row = table_row(table, site)
        measured = table.GetCellText(row, COLUMNS.index("grade"))
        table.SetCellText(row, COLUMNS.index("grade"), str(int(grade)))
        table.SetCellText(row, COLUMNS.index("status"), f"overridden by user (measured: {measured or 'none'})")
        set_provenance(table, edited="true", time=_now())
        self._write_totals(table)
        return table

    def override_echogenicity(self, table_or_patient, cls: str):
        """The user's echogenicity class replaces the measured one; mucosa score and totals follow."""
        table = self._resolve_table(table_or_patient)
        if cls not in echo_mod.CLASSES:
            raise ValueError(f"echogenicity must be one of {echo_mod.CLASSES}, not {cls!r}")
        row = table_row(table, "mucosa")
        measured = table.GetCellText(row, COLUMNS.index("echogenicity"))
        table.SetCellText(row, COLUMNS.index("echogenicity"), cls)
        self._append_status(table, row, f"echogenicity overridden by user (measured: {measured or 'none'})")
        set_provenance(table, edited="true", time=_now())
        self._write_totals(table)
        return table

    def update_from_line(self, volume):
        """The user moved the thickness line: thickness = its length in mm (calibrated images only)."""
        from RheumImagingLib.imageio import is_calibrated

        line, table = self.line_node(volume), self.table_node(volume)
        if line is None or table is None:
            raise ValueError(f"{volume.GetName()} has no SjogrenUS thickness line; run process_patient first")
        points = control_points_ras(line)
        if len(points) != 2:
            raise ValueError(f"{line.GetName()} needs two points, has {len(points)}")
        thickness = line_length_mm(points[0], points[1], is_calibrated(volume))
        row = table_row(table, "mucosa")
        status_col = COLUMNS.index("status")
        kept = [n for n in table.GetCellText(row, status_col).split("; ") if n.startswith("echogenicity")]
        if thickness.status == "ok":
            table.SetCellText(row, COLUMNS.index("thickness_mm"), _fmt(thickness.mean_mm))
            note = "ok: thickness from the user's line"
        else:
            table.SetCellText(row, COLUMNS.index("thickness_mm"), f"{UNAVAILABLE}: {thickness.reason}")
            note = f"{UNAVAILABLE}: {thickness.reason}"
        table.SetCellText(row, status_col, "; ".join([note] + kept))
        set_provenance(line, edited="true", time=_now())
        set_provenance(table, edited="true", time=_now())
        self._write_totals(table)
        return thickness

    # ------------------------------------------------------------------ reading results
    def segmentation_node(self, volume):
        return volume.GetNodeReference(_SEG_ROLE)

    def line_node(self, volume):
        return volume.GetNodeReference(_LINE_ROLE)

    def table_node(self, volume):
        return volume.GetNodeReference(_TABLE_ROLE)

    def volume_node(self, table, site: str):
        return table.GetNodeReference(_VOLUME_ROLE.format(site=site))

    def patient_table(self, patient_id: str):
        tables = self.scene.GetNodesByClass("vtkMRMLTableNode")
        for i in range(tables.GetNumberOfItems()):
            node = tables.GetItemAsObject(i)
            if node.GetAttribute(_PATIENT_ATTR) == patient_id:
                return node
        return None

    def results(self, table) -> dict[str, dict[str, str]]:
        """The table's content: row name -> {column: text}."""
        return {table.GetCellText(r, 0): {c: table.GetCellText(r, j) for j, c in enumerate(COLUMNS)}
                for r in range(table.GetNumberOfRows())}

    def labels_from_segmentation(self, volume) -> np.ndarray:
        """The segmentation node's current (possibly user-edited) label map on the volume's grid."""
        import slicer

        from RheumImagingLib.imageio import array_from_volume

        seg = self.segmentation_node(volume)
        ids = vtk.vtkStringArray()
        for value in sorted(SEGMENTS):
            ids.InsertNextValue(SEGMENTS[value][0])
        out = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "SjogrenUS export")
        try:
            if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(seg, ids, out, volume):
                raise ValueError(f"could not export {seg.GetName()}")
            return array_from_volume(out).astype(np.uint8)
        finally:
            self.scene.RemoveNode(out)

    # ------------------------------------------------------------------ nodes
    def _resolve_table(self, table_or_patient):
        if isinstance(table_or_patient, str):
            table = self.patient_table(table_or_patient)
            if table is None:
                raise ValueError(f"no SjogrenUS results for patient {table_or_patient!r}")
            return table
        return table_or_patient

    def _table_node(self, patient_id, volumes):
        table = next((self.table_node(v) for v in volumes.values() if self.table_node(v) is not None), None)
        table = table or self.patient_table(patient_id)
        if table is None:
            table = self.scene.AddNewNodeByClass("vtkMRMLTableNode", f"{patient_id} SjogrenUS scores")
            for name in COLUMNS:
                table.AddColumn().SetName(name)
            for name in SITES + TOTAL_ROWS:
                table.SetCellText(table.AddEmptyRow(), 0, name)
            table.SetAttribute(_PATIENT_ATTR, patient_id)
        for site in SITES:
            if site not in volumes:
                continue
            row = table_row(table, site)
            for col in range(1, len(COLUMNS)):
                table.SetCellText(row, col, "")
        return table

    def _segmentation_node(self, volume, labels, info):
        """Segments named and coloured by SEGMENTS (empty when the network found none of a tissue)."""
        import slicer
        from vtk.util import numpy_support

        seg = self.segmentation_node(volume)
        if seg is None:
            seg = self.scene.AddNewNodeByClass("vtkMRMLSegmentationNode", f"{volume.GetName()} segmentation")
            seg.CreateDefaultDisplayNodes()
            volume.SetNodeReferenceID(_SEG_ROLE, seg.GetID())
        seg.SetReferenceImageGeometryParameterFromVolumeNode(volume)
        segmentation = seg.GetSegmentation()
        segmentation.RemoveAllSegments()
        ids = vtk.vtkStringArray()
        for value in sorted(SEGMENTS):
            name, colour = SEGMENTS[value]
            ids.InsertNextValue(segmentation.AddEmptySegment(name, name, colour))
        labels = np.where(np.isin(labels, list(SEGMENTS)), labels, 0).astype(np.uint8)
        rows, cols = labels.shape
        image = vtk.vtkImageData()
        image.SetDimensions(cols, rows, 1)
        image.GetPointData().SetScalars(
            numpy_support.numpy_to_vtk(labels.ravel(), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR))
        labelmap = self.scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "SjogrenUS import")
        try:
            matrix = vtk.vtkMatrix4x4()
            volume.GetIJKToRASMatrix(matrix)
            labelmap.SetIJKToRASMatrix(matrix)
            labelmap.SetAndObserveImageData(image)
            if not slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, seg, ids):
                raise ValueError(f"could not import the label map of {volume.GetName()}")
        finally:
            self.scene.RemoveNode(labelmap)
        set_provenance(seg, **info)
        return seg

    def _thickness_line(self, volume, labels, info):
        """A line across the epithelium at the column of median thickness, perpendicular to the layer,
        as long as that column's thickness sample (in the image's mm; in pixels only for placement
        when the image is uncalibrated, never reported as mm)."""
        from RheumImagingLib.imageio import spacing_mm

        from .measure import layer_thickness

        line = self.line_node(volume)
        if line is None:
            line = self.scene.AddNewNodeByClass("vtkMRMLMarkupsLineNode", f"{volume.GetName()} thickness")
            line.CreateDefaultDisplayNodes()
            volume.SetNodeReferenceID(_LINE_ROLE, line.GetID())
        spacing = spacing_mm(volume) or (1.0, 1.0)
        placement = layer_thickness(labels, spacing)
        if placement.status != "ok":
            line.RemoveAllControlPoints()
            set_provenance(line, **info, placement=f"{UNAVAILABLE}: {placement.reason}")
            return line
        mask = np.asarray(labels) == 1
        cols = np.flatnonzero(mask.any(axis=0))
        samples = np.asarray(placement.samples_mm)
        k = int(np.argmin(np.abs(samples - placement.median_mm)))
        rows = np.flatnonzero(mask[:, cols[k]])
        top, bottom = rows.min() - 0.5, rows.max() + 0.5  # pixel edges (centres at integers)
        sy, sx = spacing
        vertical = (bottom - top) * sy
        # the layer's slope at this column: |slope| from the perpendicular sample, sign from the centre line
        tilt = np.sqrt(max((vertical / samples[k]) ** 2 - 1.0, 0.0))
        centre_rows = [(np.flatnonzero(mask[:, c]).min() + np.flatnonzero(mask[:, c]).max()) / 2.0 for c in cols]
        slope = tilt * np.sign(np.gradient(np.asarray(centre_rows) * sy, cols * sx)[k])
        normal = np.array([-slope, 1.0]) / np.hypot(slope, 1.0)  # (lateral, depth) mm
        centre = np.array([cols[k] * sx, (top + bottom) / 2.0 * sy])
        ends_mm = [centre - normal * samples[k] / 2.0, centre + normal * samples[k] / 2.0]
        ends_px = [[e[0] / sx, e[1] / sy] for e in ends_mm]
        line.RemoveAllControlPoints()
        set_control_points_ras(line, pixel_to_ras(volume, ends_px))
        set_provenance(line, **info, placement=f"median-thickness column {int(cols[k])}")
        return line

    @staticmethod
    def _append_status(table, row, note):
        col = COLUMNS.index("status")
        old = table.GetCellText(row, col)
        table.SetCellText(row, col, f"{old}; {note}" if old else note)

    def _write_gland_row(self, table, site, gland):
        row = table_row(table, site)
        if gland is None or gland.status != "ok":
            reason = gland.reason if gland else "not measured"
            table.SetCellText(row, COLUMNS.index("status"), f"{UNAVAILABLE}: {reason}")
            return
        table.SetCellText(row, COLUMNS.index("grade"), str(gland.grade))
        table.SetCellText(row, COLUMNS.index("foci_count"), str(len(gland.diameters_mm)))
        table.SetCellText(row, COLUMNS.index("status"), "; ".join(["ok"] + gland.notes))
        table.SetAttribute(_FINDINGS_ATTR.format(site=site), json.dumps(
            {"diameters_mm": gland.diameters_mm, "inhomogeneity": gland.inhomogeneity,
             "diffuse_coverage": gland.diffuse_coverage}))

    def _write_mucosa_row(self, table, thickness, echo):
        row = table_row(table, "mucosa")
        notes = []
        if thickness.status == "ok":
            table.SetCellText(row, COLUMNS.index("thickness_mm"), _fmt(thickness.mean_mm))
            notes.append(f"ok: thickness mean of {thickness.n_samples} columns (median {thickness.median_mm:.4f} mm)")
        else:
            text = f"{UNAVAILABLE}: {thickness.reason}"
            table.SetCellText(row, COLUMNS.index("thickness_mm"), text)
            notes.append(text)
        if echo is not None and echo.status == "ok":
            table.SetCellText(row, COLUMNS.index("echogenicity"), echo.cls)
        else:
            notes.append(f"echogenicity {UNAVAILABLE}: {echo.reason if echo else 'not measured'}")
        table.SetCellText(row, COLUMNS.index("status"), "; ".join(notes))

    def _system_of(self, table):
        name = provenance(table).get("scoring_system")
        if name and name != self.system["name"]:
            return load_system(provenance(table).get("scoring_system_source") or name)
        return self.system

    def _write_totals(self, table):
        """Mucosa score and totals from the site rows (the current, possibly corrected, values)."""
        system = self._system_of(table)
        cells = self.results(table)
        grades = {s: (int(cells[s]["grade"]) if cells[s]["grade"] else None) for s in GLAND_SITES}
        thickness_text = cells["mucosa"]["thickness_mm"]
        thickness = None if not thickness_text or thickness_text.startswith(UNAVAILABLE) else float(thickness_text)
        echo = cells["mucosa"]["echogenicity"] or None
        m_score = mucosa_score(thickness, echo, system) if thickness is not None and echo is not None else None
        result = totals(grades, m_score, system)
        cut = system.get("cutoffs", {})
        missing = [s for s in GLAND_SITES if grades[s] is None]
        gland_why = f"{UNAVAILABLE}: no grade for {', '.join(missing)}" if missing else ""
        mucosa_why = (f"{UNAVAILABLE}: needs thickness in mm and echogenicity of the mucosa image"
                      if m_score is None else "")
        entries = {
            "gland_score": (result["gland_score"], result["gland_positive"], cut.get("gland_total"), gland_why),
            "mucosa_score": (m_score, None, None, mucosa_why),
            "modified_score": (result["modified_score"], result["modified_positive"], cut.get("modified_total"),
                               gland_why or mucosa_why),
        }
        for name, (value, positive, cutoff, why) in entries.items():
            row = table_row(table, name)
            table.SetCellText(row, COLUMNS.index("grade"), _fmt(value))
            if value is None:
                status = why
            elif positive is None:
                status = "ok"
            else:
                status = f"{'positive' if positive else 'negative'} (cut-off >= {cutoff})"
            table.SetCellText(row, COLUMNS.index("status"), status)
        table.Modified()
        return result
