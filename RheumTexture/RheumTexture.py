"""RheumTexture: bone texture score of rheumatoid arthritis on hand radiographs.

Thin Slicer module: the widget only wires the UI to ``RheumTextureLib``; all logic
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
from RheumTextureLib.logic import BONES, STUDY_THRESHOLD
from RheumTextureLib.logic import RheumTextureLogic as _LibLogic

SEXES = ("F", "M")


class RheumTexture(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "RheumTexture"
        self.parent.categories = ["Rheumatology"]
        self.parent.dependencies = ["RheumImagingCommon"]
        self.parent.contributors = ["SlicerRheumImaging contributors"]
        self.parent.helpText = (
            "Metacarpal bone texture score for rheumatoid arthritis on hand radiographs: "
            "Curve-GCN contours of metacarpals 2-4, distal-third regions and a Deep-TEN ensemble "
            "(EULAR 2020 SAT0564). See the extension README."
        )
        self.parent.acknowledgementText = "Built on 3D Slicer and MONAI."


# Field types are those Slicer's GUI connectors accept for the bound widget (ctkPathLineEdit <-> pathlib.Path,
# QComboBox <-> Annotated[str, Choice]); Testing/Python/test_slicer_parameters.py checks them against the .ui.
@parameterNodeWrapper
class RheumTextureParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    imagePath: pathlib.Path
    bundlePath: pathlib.Path
    age: float = 0.0
    sex: Annotated[str, Choice(list(SEXES))] = "F"
    threshold: float = STUDY_THRESHOLD


class RheumTextureWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._running = False
        self._shownVolume = None

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/RheumTexture.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = RheumTextureLogic()
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.ui.loadButton.connect("clicked(bool)", self.onLoadButton)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.training = TrainingPanel(self.ui, "rheumtexture", lambda: self._parameterNode, self._checkCanApply)
        self.initializeParameterNode()

    def cleanup(self):
        self.training.cancel()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)
        self._showResults(None)

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
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._onParameterNodeModified)
            self._onParameterNodeModified()

    def _onParameterNodeModified(self, caller=None, event=None):
        self._checkCanApply()
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        if volume is not self._shownVolume:
            self._shownVolume = volume
            self._prefillPatient(volume)
            self._showResults(volume)

    def _checkCanApply(self):
        ready = bool(self._parameterNode and self._parameterNode.inputVolume)
        ready = ready and not self._running and not self.training.running
        self.ui.applyButton.enabled = ready
        self.ui.applyButton.toolTip = (
            "Contour MC2-4, cut each distal third and score it with the five-fold ensemble."
            if ready else "Running..." if self._running else "Choose or load a radiograph first.")

    def _prefillPatient(self, volume):
        """Age and sex recorded in the image (DICOM PatientAge/PatientSex) fill the fields."""
        if volume is None:
            return
        with slicer.util.tryWithErrorDisplay("Could not read the volume's DICOM file."):
            self.logic.lib.adopt_dicom_source(volume)
        age = volume.GetAttribute("RheumImaging.PatientAge")
        sex = volume.GetAttribute("RheumImaging.PatientSex")
        if age:
            self._parameterNode.age = float(age)
        if sex in SEXES:
            self._parameterNode.sex = sex

    def onLoadButton(self):
        path = chosen_path(self._parameterNode.imagePath)
        with slicer.util.tryWithErrorDisplay("Failed to load the radiograph.", waitCursor=True):
            if path is None:
                raise ValueError("Choose a radiograph file first.")
            node = self.logic.lib.load_radiograph(path)
            self._parameterNode.inputVolume = node
            slicer.util.setSliceViewerLayers(background=node, fit=True)

    def onApplyButton(self):
        volume = self._parameterNode.inputVolume
        params = self._parameterNode
        if not ensureDependencies():
            return
        self._running = True
        self._checkCanApply()
        try:
            with slicer.util.tryWithErrorDisplay("Texture scoring failed.", waitCursor=True):
                self.onProgress("Loading the bundles", 0.0)
                self.logic.lib.load_bundles(chosen_path(params.bundlePath))
                self.logic.lib.process(volume, age=params.age or None, sex=params.sex,
                                       threshold=params.threshold, progress=self.onProgress)
        finally:
            self._running = False
            self._checkCanApply()
        self._showResults(volume)

    def onProgress(self, stage, fraction):
        """Each stage of the work shows in the panel; repainting between stages keeps Slicer drawn."""
        self.ui.progressBar.value, self.ui.statusLabel.text = progress_text(stage, fraction)
        slicer.app.processEvents()

    def _showResults(self, volume):
        table = self.logic.lib.table_node(volume) if volume is not None else None
        self.ui.resultsTableView.setMRMLTableNode(table)
        self.removeObservers(self.onCurveEdited)
        for bone in BONES if table is not None else ():
            curve = self.logic.lib.curve_node(volume, bone)
            if curve is not None:
                # Fired once when the user releases a dragged point, not for every mouse move
                # (vtkMRMLMarkupsNode.h v5.8.1 line 249; invoked in vtkSlicerMarkupsWidget.cxx line 876).
                self.addObserver(curve, curve.PointEndInteractionEvent, self.onCurveEdited)

    def onCurveEdited(self, curve, event):
        """A dragged control point re-cuts and re-scores that bone only."""
        volume = self._parameterNode.inputVolume
        with slicer.util.tryWithErrorDisplay("Re-scoring failed.", waitCursor=True):
            self.onProgress(f"Re-scoring {curve.GetAttribute('RheumTexture.Bone')}", 0.0)
            self.logic.lib.rescore_bone(volume, curve.GetAttribute("RheumTexture.Bone"))
            self.onProgress("Done", 1.0)


class RheumTextureLogic(ScriptedLoadableModuleLogic):
    """Slicer-side logic: hands ``slicer.mrmlScene`` to the Qt-free library logic."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        # Volumes from the DICOM browser are read again from their files (calibration, age, sex).
        database = getattr(slicer, "dicomDatabase", None)
        self.lib = _LibLogic(slicer.mrmlScene, file_for_instance=database.fileForInstance if database else None)

    def getParameterNode(self):
        return RheumTextureParameterNode(super().getParameterNode())


class RheumTextureTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (ctest); the full suite runs on slicer-core under pytest."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_load_radiograph()

    def test_load_radiograph(self):
        import tempfile

        from RheumTextureLib.phantom import generate_cohort

        cohort = generate_cohort(tempfile.mkdtemp(), 2, seed=0)
        node = RheumTextureLogic().lib.load_radiograph(cohort.parent / "images" / "RA0001.dcm")
        self.assertIsNotNone(node.GetImageData())
        self.assertEqual(node.GetAttribute("RheumImaging.Calibration"), "ImagerPixelSpacing")
        logging.info("RheumTexture load test passed")
