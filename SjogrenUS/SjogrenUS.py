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

from RheumImagingCommon import TrainingPanel, ensureDependencies
from RheumImagingLib.widget_support import chosen_path, progress_text
from SjogrenUSLib.corrections import pending_corrections
from SjogrenUSLib.logic import SjogrenUSLogic as _LibLogic
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


#: UI/parameter name prefix of each site's volume, in the table's site order.
SITE_PARAMETERS = {
    "mucosa": "mucosa",
    "parotid_left": "parotidLeft",
    "parotid_right": "parotidRight",
    "submandibular_left": "submandibularLeft",
    "submandibular_right": "submandibularRight",
}


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


class SjogrenUSWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._table = None
        self._running = False
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
        self.training = TrainingPanel(self.ui, "sjogrenus", lambda: self._parameterNode, self._checkCanApply)
        self.ui.overrideButton.connect("clicked(bool)", self.onOverrideButton)
        self.initializeParameterNode()

    def _grade_spin_boxes(self):
        return {"parotid_left": self.ui.parotidLeftGradeSpinBox, "parotid_right": self.ui.parotidRightGradeSpinBox,
                "submandibular_left": self.ui.submandibularLeftGradeSpinBox,
                "submandibular_right": self.ui.submandibularRightGradeSpinBox}

    def _volumes(self):
        if self._parameterNode is None:
            return {}
        return {site: getattr(self._parameterNode, f"{name}Volume") for site, name in SITE_PARAMETERS.items()}

    def cleanup(self):
        self.training.cancel()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
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
        volumes = {s: v for s, v in self._volumes().items() if v is not None}
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
        ready = any(v is not None for v in self._volumes().values())
        ready = ready and not self._running and not self.training.running
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = (
            "Segment, measure and grade every given image; one table for the patient." if ready
            else "Running..." if self._running else "Choose or load at least one site's image first.")

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
        params = self._parameterNode
        volumes = {s: v for s, v in self._volumes().items() if v is not None}
        table = None
        if not ensureDependencies():
            return
        self._running = True
        self._checkCanApply()
        try:
            with slicer.util.tryWithErrorDisplay("SjogrenUS scoring failed.", waitCursor=True):
                self.onProgress("Loading the segmentation bundle", 0.0)
                self.logic.lib.set_system(params.scoringSystem)
                self.logic.lib.load_segmenter(chosen_path(params.bundlePath))
                table = self.logic.lib.process_patient(volumes, params.patientId or "patient",
                                                       progress=self.onProgress)
        finally:
            self._running = False
            self._checkCanApply()
        if table is not None:
            self.showResults(table)

    def onProgress(self, stage, fraction):
        """Each stage of the work shows in the panel; repainting between stages keeps Slicer drawn."""
        self.ui.progressBar.value, self.ui.statusLabel.text = progress_text(stage, fraction)
        slicer.app.processEvents()

    def showResults(self, table):
        """Show the table, fill the correction controls from it and watch the thickness line."""
        self._table = table
        self.ui.resultsTableView.setMRMLTableNode(table)
        self.ui.overrideButton.enabled = table is not None
        self.removeObservers(self.onLineEdited)
        if table is None:
            return
        cells = self.logic.lib.results(table)
        for site, spin_box in self._grade_spin_boxes().items():
            if cells[site]["grade"]:
                spin_box.value = int(cells[site]["grade"])
        if cells["mucosa"]["echogenicity"]:
            self.ui.echogenicityComboBox.currentText = cells["mucosa"]["echogenicity"]
        mucosa = self.logic.lib.volume_node(table, "mucosa")
        line = self.logic.lib.line_node(mucosa) if mucosa else None
        if line is not None:
            self.addObserver(line, line.PointEndInteractionEvent, self.onLineEdited)

    def onOverrideButton(self):
        """Grades and echogenicity that differ from the table become the user's corrections."""
        cells = self.logic.lib.results(self._table)
        imaged = [site for site in cells if site in SITE_PARAMETERS and self.logic.lib.volume_node(self._table, site)]
        grades = {site: spin_box.value for site, spin_box in self._grade_spin_boxes().items()}
        changed, echo = pending_corrections(cells, imaged, grades, self.ui.echogenicityComboBox.currentText)
        with slicer.util.tryWithErrorDisplay("Correction failed.", waitCursor=True):
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
        self.setUp()
        self.test_load_ultrasound()
        self.setUp()
        self.test_patient_scores_and_corrections()

    def test_load_ultrasound(self):
        """A phantom study written here (no download): the US region calibration gives mm."""
        import tempfile

        from SjogrenUSLib.phantom import generate_cohort

        cohort = generate_cohort(tempfile.mkdtemp(), 1, seed=0)
        node = SjogrenUSLogic().lib.load_ultrasound(next((cohort.parent / "images").glob("*_mucosa.dcm")))
        self.assertIsNotNone(node.GetImageData())
        self.assertEqual(node.GetAttribute("RheumImaging.Calibration"), "US region")
        logging.info("SjogrenUS load test passed")

    def test_patient_scores_and_corrections(self):
        """Phantom patient scored in Slicer's scene; the masks come from the phantom's truth (a
        stand-in for the trained network, which the test does not assume is installed)."""
        import numpy as np

        from RheumImagingLib.imageio import volume_from_array
        from SjogrenUSLib.phantom import GLANDS, render_gland, render_mucosa

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
        lib.set_system("phantom_grading")  # the grading the phantom glands are rendered to: 4 + 2 + 3 + 0
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
