"""SjogrenUS: ultrasound scoring of primary Sjogren's syndrome (salivary glands, buccal mucosa).

Thin Slicer module: the widget only wires the UI to ``SjogrenUSLib``; all logic
runs on the scene it is given, so it is tested outside Slicer on slicer-core.
"""

import logging
import pathlib
from typing import Annotated

import slicer
import vtk
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.parameterNodeWrapper import Choice, parameterNodeWrapper
from slicer.util import VTKObservationMixin
from MRMLCorePython import vtkMRMLScalarVolumeNode

from RheumImagingCommon import JobRunner, TrainingPanel, cancelWork, ensureDependencies, showButtonStates
from RheumImagingLib.background import PanelState
from RheumImagingLib.results import qc_warning
from RheumImagingLib.widget_support import COHORT_LABELS, chosen_path
from SjogrenUSLib.logic import SjogrenUSLogic as _LibLogic
from SjogrenUSLib.panel import (SITE_PARAMETERS, add_to_cohort, chosen_volumes, correction_controls,
                                measured_from_result, pending_corrections, work_task)
from SjogrenUSLib.scoring import DEFAULT_SYSTEM, SYSTEMS_DIR

#: The scoring systems shipped with the extension (SjogrenUSLib/scoring_systems/*.json).
SCORING_SYSTEMS = sorted(p.stem for p in SYSTEMS_DIR.glob("*.json"))


class SjogrenUS(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "SjogrenUS"
        self.parent.categories = ["Rheumatology"]
        self.parent.dependencies = ["RheumImagingCommon"]
        self.parent.contributors = ["SlicerRheumImaging contributors"]
        self.parent.helpText = (
            "Primary Sjogren's syndrome ultrasound: buccal mucosa thickness and echogenicity, "
            "major salivary gland grades (0-16) and the modified 0-18 score. See the extension README."
        )
        self.parent.acknowledgementText = "Built on 3D Slicer and MONAI."


# Field types are those Slicer's GUI connectors accept for the bound widget (ctkPathLineEdit <-> pathlib.Path,
# QComboBox <-> Annotated[str, Choice]); Testing/Python/test_slicer_parameters.py checks them against the .ui.
@parameterNodeWrapper
class SjogrenUSParameterNode:
    mucosaVolume: vtkMRMLScalarVolumeNode
    parotidLeftVolume: vtkMRMLScalarVolumeNode
    parotidRightVolume: vtkMRMLScalarVolumeNode
    submandibularLeftVolume: vtkMRMLScalarVolumeNode
    submandibularRightVolume: vtkMRMLScalarVolumeNode
    imagePath: pathlib.Path
    patientId: str = ""
    bundlePath: pathlib.Path
    scoringSystem: Annotated[str, Choice(SCORING_SYSTEMS)] = DEFAULT_SYSTEM
    cohortDir: pathlib.Path
    cohortLabel: Annotated[str, Choice(list(COHORT_LABELS))] = "unknown"


class SjogrenUSWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._table = None
        self.state = PanelState()  # what runs; the buttons follow it
        self._shownVolumes = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SjogrenUS.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SjogrenUSLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.loadButton.connect("clicked(bool)", self.onLoadButton)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.addToCohortButton.connect("clicked(bool)", self.onAddToCohortButton)
        self.training = TrainingPanel(self.ui, "sjogrenus", lambda: self._parameterNode, self._onTrainingChanged)
        self.runner = JobRunner(self.ui, self._onJobFinished)
        self.ui.overrideButton.connect("clicked(bool)", self.onOverrideButton)
        self.initializeParameterNode()

    def _grade_spin_boxes(self):
        return {"parotid_left": self.ui.parotidLeftGradeSpinBox, "parotid_right": self.ui.parotidRightGradeSpinBox,
                "submandibular_left": self.ui.submandibularLeftGradeSpinBox,
                "submandibular_right": self.ui.submandibularRightGradeSpinBox}

    def cleanup(self):
        self.training.cancel()
        self.runner.cancel()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
        self.runner.cancel()  # its volumes go with the scene
        self.state.cancelled()
        self.setParameterNode(None)
        self.showResults(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode):
        """Bind the panel to the parameter node and watch it (Slicer's scripted-module template, v5.8.1
        Utilities/Templates/Modules/Scripted/TemplateKey.py lines 217-232)."""
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
        self._parameterNode = inputParameterNode
        self._shownVolumes = None
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    def _onParameterNodeModified(self, caller=None, event=None):
        self._checkCanApply()
        volumes = chosen_volumes(self._parameterNode)
        if volumes == self._shownVolumes:
            return
        self._shownVolumes = volumes
        with slicer.util.tryWithErrorDisplay("Could not read a volume's DICOM file."):
            for volume in volumes.values():
                self.logic.lib.adopt_dicom_source(volume)
        if not self._parameterNode.patientId and volumes:
            first = next(iter(volumes.values()))
            self._parameterNode.patientId = first.GetAttribute("RheumImaging.PatientID") or first.GetName()
        table = next((self.logic.lib.table_node(v) for v in volumes.values() if self.logic.lib.table_node(v)), None)
        self.showResults(table)

    def _checkCanApply(self):
        showButtonStates(self.ui, self.state, bool(chosen_volumes(self._parameterNode)),
                         "Segment, measure and grade every given image; one table for the patient.",
                         "Choose or load at least one site's image first.")

    def _onTrainingChanged(self):
        self.state.training_changed(self.training.running)
        self._checkCanApply()

    def onLoadButton(self):
        site = list(SITE_PARAMETERS)[self.ui.loadSiteComboBox.currentIndex]
        path = chosen_path(self._parameterNode.imagePath)
        with slicer.util.tryWithErrorDisplay("Failed to load the ultrasound image.", waitCursor=True):
            if path is None:
                raise ValueError("Choose an ultrasound image file first.")
            node = self.logic.lib.load_ultrasound(path)
            setattr(self._parameterNode, f"{SITE_PARAMETERS[site]}Volume", node)
            slicer.util.setSliceViewerLayers(background=node, fit=True)

    def onApplyButton(self):
        """Segmentation runs in a separate process; the scene is written only when it has finished."""
        params = self._parameterNode
        volumes = chosen_volumes(params)
        if not ensureDependencies():
            return
        patient_id = params.patientId or "patient"
        with slicer.util.tryWithErrorDisplay("SjogrenUS scoring failed to start.", waitCursor=True):
            self.logic.lib.set_system(params.scoringSystem)
            task, arrays = work_task(self.logic.lib.prepare_patient(volumes), params.scoringSystem,
                                     chosen_path(params.bundlePath))
            self.state.start("apply")
            self.runner.start("sjogrenus", task, arrays, stage="Starting the segmentation process",
                              onDone=lambda result, labels: self._applyPatient(volumes, patient_id, result, labels))
        if not self.runner.running:
            self.state.cancelled()
        self._checkCanApply()

    def _applyPatient(self, volumes, patient_id, result, labels):
        table = self.logic.lib.apply_patient(volumes, patient_id, measured_from_result(result, labels),
                                             bundle_provenance=result["provenance"])
        self.showResults(table)

    def _onJobFinished(self):
        self.state.finished()
        self._checkCanApply()

    def onCancelButton(self):
        cancelWork(self.training, self.runner, self.state)
        self._checkCanApply()

    def onAddToCohortButton(self):
        params = self._parameterNode
        volumes = chosen_volumes(params)
        with slicer.util.tryWithErrorDisplay("Could not add to the training cohort.", waitCursor=True):
            first = next(iter(volumes.values()))
            patient_id = params.patientId or first.GetAttribute("RheumImaging.PatientID") or first.GetName()
            rows = add_to_cohort(self.logic.lib, volumes, params.cohortDir, patient_id=patient_id,
                                 label=params.cohortLabel)
            self.ui.statusLabel.text = f"Added {len(rows)} image(s) of {patient_id} to {chosen_path(params.cohortDir)}"

    def showResults(self, table):
        """Show the table, fill the correction controls from it and watch the thickness line."""
        self._table = table
        self.ui.resultsTableView.setMRMLTableNode(table)
        self.ui.overrideButton.enabled = table is not None
        self.removeObservers(self.onLineEdited)
        if table is None:
            return
        cells = self.logic.lib.results(table)
        self.ui.qcWarningLabel.text = qc_warning(row.get("qc", "ok") for row in cells.values()) or ""
        patient = self.logic.lib.patient_result(table)
        if patient is None:  # a table from an earlier version, without the results model
            self.ui.overrideButton.enabled = False
            return
        grades, echogenicity = correction_controls(patient)
        for site, spin_box in self._grade_spin_boxes().items():
            if site in grades:
                spin_box.value = grades[site]
        if echogenicity:
            self.ui.echogenicityComboBox.currentText = echogenicity
        mucosa = self.logic.lib.volume_node(table, "mucosa")
        line = self.logic.lib.line_node(mucosa) if mucosa else None
        if line is not None:
            self.addObserver(line, line.PointEndInteractionEvent, self.onLineEdited)

    def onOverrideButton(self):
        """Grades and echogenicity that differ from the table become the user's corrections."""
        grades = {site: spin_box.value for site, spin_box in self._grade_spin_boxes().items()}
        with slicer.util.tryWithErrorDisplay("Correction failed.", waitCursor=True):
            changed, echo = pending_corrections(self.logic.lib.patient_result(self._table), grades,
                                                self.ui.echogenicityComboBox.currentText)
            for site, grade in changed.items():
                self.logic.lib.override_grade(self._table, site, grade)
            if echo:
                self.logic.lib.override_echogenicity(self._table, echo)

    def onLineEdited(self, line, event):
        """A moved thickness line sets the mucosa thickness (mm only on calibrated images)."""
        with slicer.util.tryWithErrorDisplay("Thickness update failed.", waitCursor=True):
            self.logic.lib.update_from_line(self.logic.lib.volume_node(self._table, "mucosa"))


class SjogrenUSLogic(ScriptedLoadableModuleLogic):
    """Slicer-side logic: hands ``slicer.mrmlScene`` to the Qt-free library logic."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        # Volumes from the DICOM browser are read again from their files (calibration, age, sex).
        database = getattr(slicer, "dicomDatabase", None)
        self.lib = _LibLogic(slicer.mrmlScene, file_for_instance=database.fileForInstance if database else None)

    def getParameterNode(self):
        return SjogrenUSParameterNode(super().getParameterNode())


class SjogrenUSTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (ctest); the full suite runs on slicer-core under pytest."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        from RheumImagingLib.widget_support import phantom_self_test_skipped

        skipped = phantom_self_test_skipped("SjogrenUS")
        if skipped:  # an installed extension's Reload and Test: the phantoms ship with the source tree only
            logging.warning(skipped)
            self.delayDisplay(skipped)
            return
        self.setUp()
        self.test_load_ultrasound()
        self.setUp()
        self.test_patient_scores_and_corrections()

    def test_load_ultrasound(self):
        """A phantom study written here (no download): the US region calibration gives mm."""
        import tempfile

        from RheumImagingDemo.us_phantom import generate_cohort

        cohort = generate_cohort(tempfile.mkdtemp(), 1, seed=0)
        node = SjogrenUSLogic().lib.load_ultrasound(next((cohort.parent / "images").glob("*_mucosa.dcm")))
        self.assertIsNotNone(node.GetImageData())
        self.assertEqual(node.GetAttribute("RheumImaging.Calibration"), "US region")
        logging.info("SjogrenUS load test passed")

    def test_patient_scores_and_corrections(self):
        """Phantom patient scored in Slicer's scene; the masks come from the phantom's truth (a
        stand-in for the trained network, which the test does not assume is installed)."""
        import numpy as np

        from RheumImagingDemo.us_phantom import GLANDS, GRADING_FILE, render_gland, render_mucosa
        from RheumImagingLib.imageio import volume_from_array

        images = {"mucosa": render_mucosa(1, 0.3, "heterogeneous_hyperechoic")}
        images.update({site: render_gland(2 + k, site, g) for k, (site, g) in enumerate(zip(GLANDS, (4, 2, 3, 0)))})
        truth = {id(px): np.where(lab == 4, 3, lab) for px, lab, _ in images.values()}

        class TruthSegmenter:
            def __init__(self):
                self.by_sum = {float(np.sum(px, dtype=np.float64)): truth[id(px)] for px, _, _ in images.values()}

            def predict(self, pixels):
                return self.by_sum[float(np.sum(pixels, dtype=np.float64))]

            def provenance(self):
                return {"bundle": "phantom truth (test)"}

        lib = SjogrenUSLogic().lib
        lib.segmenter = TruthSegmenter()
        lib.set_system(str(GRADING_FILE))  # the grading the phantom glands are rendered to: 4 + 2 + 3 + 0
        volumes = {site: volume_from_array(slicer.mrmlScene, px, t["spacing_mm"], site, "US region")
                   for site, (px, _, t) in images.items()}
        table = lib.process_patient(volumes, "PHANTOM")
        cells = lib.results(table)
        self.assertEqual(cells["gland_score"]["grade"], "9")
        self.assertEqual(cells["modified_score"]["grade"], "11")
        lib.override_grade(table, "parotid_left", 0)
        self.assertEqual(lib.results(table)["gland_score"]["grade"], "5")
        self.assertIsNotNone(lib.line_node(volumes["mucosa"]))
        logging.info("SjogrenUS patient test passed")
