"""SjogrenUS logic on an MRML scene given by the caller (Slicer's or a test's).

Up to five ultrasound images of one patient (buccal mucosa and the four major glands) ->
per image a segmentation node (epithelium, submucosa, parenchyma), for the mucosa a markups
line across the epithelium at its median-thickness column, and one table node per patient
with a row per site and the totals. The record is the typed model of ``results.py``, stored as
JSON on the table (so corrections survive a saved and reloaded scene); the table is its view,
re-rendered after each correction and never read back. Every node carries provenance attributes
and sits under the patient in the subject hierarchy; each volume references its results.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import numpy as np
import vtk

from RheumImagingLib.anatomy import GLAND_SITES
from RheumImagingLib.errors import InputError
from RheumImagingLib.geometry import control_points_ras, pixel_to_ras, set_control_points_ras
from RheumImagingLib.results import render_table, store_model, stored_model
from RheumImagingLib.scene import place_under_patient, provenance, set_provenance

from . import echogenicity as echo_mod
from . import results as model
from .measure import line_length_mm
from .patient import analyse_image
from .results import COLUMNS, SITES, TOTAL_ROWS, UNAVAILABLE, PatientResult  # noqa: F401 (COLUMNS re-exported)
from .scoring import DEFAULT_SYSTEM, load_system

#: label value -> (segment name, colour); the segmenter's labels (segmentation.LABELS).
SEGMENTS = {1: ("epithelium", (0.95, 0.75, 0.2)), 2: ("submucosa", (0.3, 0.6, 1.0)),
            3: ("parenchyma", (0.35, 0.85, 0.35))}

_SEG_ROLE = "SjogrenUS.Segmentation"
_LINE_ROLE = "SjogrenUS.ThicknessLine"
_TABLE_ROLE = "SjogrenUS.Scores"
_VOLUME_ROLE = "SjogrenUS.Volume.{site}"
_PATIENT_ATTR = "SjogrenUS.PatientID"
_SITE_ATTR = "SjogrenUS.Site"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


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
        report = progress or (lambda stage, fraction: None)
        inputs = self.prepare_patient(volumes)
        if self.segmenter is None:
            self.load_segmenter()
        measured = {}
        for k, (site, (pixels, spacing)) in enumerate(inputs.items()):
            report(f"Segmenting and measuring {site}", k / len(inputs))
            result = self.measure_site(site, pixels, spacing)
            measured[site] = (result.labels, model.site_from_image(result))
        table = self.apply_patient(volumes, patient_id, measured, label)
        report("Done", 1.0)
        return table

    def prepare_patient(self, volumes: dict) -> dict:
        """Step 1, on the main thread: {site: (pixels, spacing_mm)} copied out of the scene (DICOM-browser
        volumes first read from their files), so that measuring needs no MRML."""
        from RheumImagingLib.imageio import array_from_volume, spacing_mm

        unknown = set(volumes) - set(SITES)
        if unknown:
            raise ValueError(f"unknown site(s) {sorted(unknown)}; sites are {', '.join(SITES)}")
        volumes = {s: v for s, v in volumes.items() if v is not None}
        if not volumes:
            raise ValueError("no image given: pass at least one of " + ", ".join(SITES))
        for volume in volumes.values():
            self.adopt_dicom_source(volume)
        return {site: (array_from_volume(v).astype(np.float32), spacing_mm(v)) for site, v in volumes.items()}

    def measure_site(self, site: str, pixels, spacing):
        """Step 2, safe on a worker thread (no scene access): segment and measure one image."""
        return analyse_image(site, pixels, spacing, self.segmenter, self.system)

    def apply_patient(self, volumes: dict, patient_id: str, measured: dict, label=None, bundle_provenance=None):
        """Step 3, on the main thread: ``{site: (labels, results.SiteResult)}`` into the scene (segmentations,
        the thickness line, the results model and its table). Nothing is written before this step, so a
        cancelled run leaves the scene as it was. ``bundle_provenance``: the segmenter's, when it ran
        elsewhere (``work_cli``)."""
        from RheumImagingLib.annotations import spacing_source_of

        volumes = {s: v for s, v in volumes.items() if v is not None and s in measured}
        base = dict(bundle_provenance or self.segmenter.provenance(), scoring_system=self.system["name"],
                    scoring_system_source=self.system_ref, time=_now(), patient_id=patient_id)
        table = self._table_node(patient_id, volumes)
        set_provenance(table, **base, label=label)
        place_under_patient(self.scene, table, patient_id, near=next(iter(volumes.values())))
        patient = self.patient_result(table) or PatientResult(patient_id, label, self.system["name"])
        patient.label, patient.scoring_system = label, self.system["name"]
        for site, volume in volumes.items():
            labels, site_result = measured[site]
            info = dict(base, input=volume.GetAttribute("RheumImaging.SourceFile") or volume.GetName(), site=site)
            volume.SetAttribute(_SITE_ATTR, site)
            volume.SetAttribute(_PATIENT_ATTR, patient_id)
            volume.SetNodeReferenceID(_TABLE_ROLE, table.GetID())
            table.SetNodeReferenceID(_VOLUME_ROLE.format(site=site), volume.GetID())
            place_under_patient(self.scene, volume, patient_id, near=volume)
            seg = self._segmentation_node(volume, labels, info)
            place_under_patient(self.scene, seg, patient_id, near=volume)
            if site == "mucosa":
                line = self._thickness_line(volume, labels, info)
                place_under_patient(self.scene, line, patient_id, near=volume)
            site_result.spacing_source = spacing_source_of(volume)
            patient.sites[site] = site_result
        self._render(table, patient)
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
        patient = self._model(table)
        reader = patient.sites[site].reader if site in patient.sites else {}
        result = analyse_image(site, pixels, spacing_mm(volume), None, self._system_of(table), labels=labels,
                               reader=reader or None)
        set_provenance(seg, edited="true", time=info["time"])
        source = patient.sites[site].spacing_source if site in patient.sites else ""
        patient.sites[site] = model.site_from_image(result, reader)
        patient.sites[site].spacing_source = source
        set_provenance(table, edited="true", time=info["time"])
        if site == "mucosa":
            line = self.line_node(volume)
            if line is not None and provenance(line).get("edited") == "true":
                self._render(table, patient)
                self.update_from_line(volume)  # the user's caliper line wins over the automatic thickness
                return result
            self._thickness_line(volume, labels, info)
        self._render(table, patient)
        return result

    def set_reader_findings(self, table_or_patient, site: str, **entries):
        """The reader's entries for a gland's criteria the software does not measure (e.g.
        ``echogenic_bands=True``, ``calcifications=False``; None clears one); the grade is recomputed
        from the stored measurements and these entries, and totals follow."""
        from .scoring import reader_criteria

        table = self._resolve_table(table_or_patient)
        system = self._system_of(table)
        allowed = reader_criteria(system)
        unknown = sorted(set(entries) - set(allowed))
        if site not in GLAND_SITES or unknown:
            raise ValueError(f"site must be one of {GLAND_SITES} and criteria among {allowed}; "
                             f"got {site!r}, {unknown}")
        patient = self._model(table)
        if site not in patient.sites or patient.sites[site].measured_grade is None:
            raise ValueError(f"{site} has no measured grade to update; run process_patient first")
        grade = model.set_reader_findings(patient, site, entries, system)
        set_provenance(table, edited="true", time=_now())
        self._render(table, patient)
        return grade

    def override_grade(self, table_or_patient, site: str, grade: int):
        """The user's grade replaces the measured one; totals follow."""
        table = self._resolve_table(table_or_patient)
        if site not in GLAND_SITES:
            raise ValueError(f"site must be one of {GLAND_SITES}, not {site!r}")
        low, high = self.system.get("grade_range", [0, 4])
        if int(grade) != grade or not low <= grade <= high:
            raise ValueError(f"grade must be an integer {low}-{high} in {self.system['name']}, not {grade!r}")
        patient = self._model(table)
        if site not in patient.sites:
            raise ValueError(f"{site} was not imaged; there is no grade to correct")
        model.override_grade(patient, site, grade)
        set_provenance(table, edited="true", time=_now())
        self._render(table, patient)
        return table

    def override_echogenicity(self, table_or_patient, cls: str):
        """The user's echogenicity class replaces the measured one; mucosa score and totals follow."""
        table = self._resolve_table(table_or_patient)
        if cls not in echo_mod.CLASSES:
            raise ValueError(f"echogenicity must be one of {echo_mod.CLASSES}, not {cls!r}")
        patient = self._model(table)
        if "mucosa" not in patient.sites:
            raise ValueError("the mucosa was not imaged; there is no echogenicity to correct")
        model.override_echogenicity(patient, cls)
        set_provenance(table, edited="true", time=_now())
        self._render(table, patient)
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
        patient = self._model(table)
        model.set_line_thickness(patient, thickness)
        set_provenance(line, edited="true", time=_now())
        set_provenance(table, edited="true", time=_now())
        self._render(table, patient)
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

    def patient_result(self, table) -> PatientResult | None:
        """The typed results model stored on ``table`` (None for a table without one)."""
        data = stored_model(table)
        return PatientResult.from_dict(data) if data else None

    def patient_row(self, table) -> dict:
        """The patient's scores row, as ``sjogrenus score`` writes it (the same rendering function)."""
        return model.csv_row(self._model(table), self._system_of(table))

    def results(self, table) -> dict[str, dict[str, str]]:
        """The table's content as shown: row name -> {column: text} (a view, for display and tests)."""
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
            table.SetAttribute(_PATIENT_ATTR, patient_id)
        return table

    def _model(self, table) -> PatientResult:
        patient = self.patient_result(table)
        if patient is None:
            raise ValueError(f"{table.GetName()} holds no SjogrenUS results model; run process_patient again")
        return patient

    def _render(self, table, patient: PatientResult) -> None:
        """The model is stored on the table and the table re-rendered from it (the one MRML view)."""
        store_model(table, patient.to_dict())
        render_table(table, COLUMNS, model.table_rows(patient, self._system_of(table)))

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

    def _system_of(self, table):
        name = provenance(table).get("scoring_system")
        if name and name != self.system["name"]:
            return load_system(provenance(table).get("scoring_system_source") or name)
        return self.system
