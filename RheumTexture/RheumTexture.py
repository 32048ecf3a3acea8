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

from RheumImagingCommon import JobRunner, TrainingPanel, cancelWork, ensureDependencies, showButtonStates
from RheumImagingLib.background import PanelState
from RheumImagingLib.results import qc_warning
from RheumImagingLib.widget_support import COHORT_LABELS, chosen_path
from RheumTextureLib.logic import BONES, STUDY_THRESHOLD
from RheumTextureLib.logic import RheumTextureLogic as _LibLogic
from RheumTextureLib.panel import add_to_cohort, bone_task, hand_task

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
    cohortDir: pathlib.Path
    cohortLabel: Annotated[str, Choice(list(COHORT_LABELS))] = "unknown"


class RheumTextureWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.state = PanelState()  # what runs, what waits; the buttons follow it
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
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.addToCohortButton.connect("clicked(bool)", self.onAddToCohortButton)
        self.training = TrainingPanel(self.ui, "rheumtexture", lambda: self._parameterNode, self._onTrainingChanged)
        self.runner = JobRunner(self.ui, self._onJobFinished)
        self.initializeParameterNode()

    def cleanup(self):
        self.training.cancel()
        self.runner.cancel()
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event):
        self.runner.cancel()  # its volume goes with the scene
        self.state.cancelled()
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
        showButtonStates(self.ui, self.state, bool(self._parameterNode and self._parameterNode.inputVolume),
                         "Contour MC2-4, cut each distal third and score it with the five-fold ensemble.",
                         "Choose or load a radiograph first.")

    def _onTrainingChanged(self):
        bone = self.state.training_changed(self.training.running)
        if bone is not None:  # a bone edited during training is re-scored now
            self._startRescore(bone)
        self._checkCanApply()

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
        """Processing runs in a separate process; the scene is written only when it has finished."""
        volume, params = self._parameterNode.inputVolume, self._parameterNode
        if not ensureDependencies():
            return
        age, sex, threshold = params.age or None, params.sex, params.threshold
        with slicer.util.tryWithErrorDisplay("Texture scoring failed to start.", waitCursor=True):
            task, arrays = hand_task(self.logic.lib.prepare(volume), chosen_path(params.bundlePath))
            self.state.start("apply")
            self.runner.start("rheumtexture", task, arrays, stage="Starting the scoring process",
                              onDone=lambda computed, _: self._applyHand(volume, computed, age, sex, threshold))
        if not self.runner.running:
            self.state.cancelled()
        self._checkCanApply()

    def _applyHand(self, volume, computed, age, sex, threshold):
        self.logic.lib.apply_hand(volume, computed, age=age, sex=sex, threshold=threshold)
        self._showResults(volume)

    def _startRescore(self, bone):
        volume = self._parameterNode.inputVolume
        with slicer.util.tryWithErrorDisplay("Re-scoring failed to start.", waitCursor=True):
            points = self.logic.lib.edited_points(volume, bone)
            task, arrays = bone_task(self.logic.lib.prepare(volume), chosen_path(self._parameterNode.bundlePath),
                                     bone, points)
            self.runner.start("rheumtexture", task, arrays, stage=f"Re-scoring {bone}",
                              onDone=lambda computed, _: self.logic.lib.apply_bone(volume, computed))
        if not self.runner.running:
            self.state.cancelled()
        self._checkCanApply()

    def _onJobFinished(self):
        """One job ended: the next waiting bone (if any) is re-scored."""
        bone = self.state.finished()
        if bone is not None:
            self._startRescore(bone)
        self._checkCanApply()
        self._showQc()

    def onCancelButton(self):
        cancelWork(self.training, self.runner, self.state)
        self._checkCanApply()

    def onAddToCohortButton(self):
        volume, params = self._parameterNode.inputVolume, self._parameterNode
        with slicer.util.tryWithErrorDisplay("Could not add to the training cohort.", waitCursor=True):
            row = add_to_cohort(self.logic.lib, volume, params.cohortDir,
                                patient_id=volume.GetAttribute("RheumImaging.PatientID") or volume.GetName(),
                                label=params.cohortLabel, age=params.age, sex=params.sex)
            self.ui.statusLabel.text = f"Added {row.get('patient_id', '')} to {chosen_path(params.cohortDir)}"

    def _showQc(self):
        volume = self._parameterNode.inputVolume if self._parameterNode else None
        try:
            qc = [self.logic.lib.qc(volume)] if volume is not None and self.logic.lib.table_node(volume) else []
        except ValueError:  # a table from an earlier version, without the results model
            qc = []
        self.ui.qcWarningLabel.text = qc_warning(qc) or ""

    def _showResults(self, volume):
        table = self.logic.lib.table_node(volume) if volume is not None else None
        self.ui.resultsTableView.setMRMLTableNode(table)
        self._showQc()
        self.removeObservers(self.onCurveEdited)
        for bone in BONES if table is not None else ():
            curve = self.logic.lib.curve_node(volume, bone)
            if curve is not None:
                # Fired once when the user releases a dragged point, not for every mouse move
                # (vtkMRMLMarkupsNode.h v5.8.1 line 249; invoked in vtkSlicerMarkupsWidget.cxx line 876).
                self.addObserver(curve, curve.PointEndInteractionEvent, self.onCurveEdited)

    def onCurveEdited(self, curve, event):
        """A dragged control point re-cuts and re-scores that bone once, now or after the running job."""
        bone = self.state.bone_edited(curve.GetAttribute("RheumTexture.Bone"))
        if bone is not None:
            self._startRescore(bone)
        self._checkCanApply()


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
        from RheumImagingLib.widget_support import phantom_self_test_skipped

        skipped = phantom_self_test_skipped("RheumTexture")
        if skipped:  # an installed extension's Reload and Test: the phantoms ship with the source tree only
            logging.warning(skipped)
            self.delayDisplay(skipped)
            return
        self.setUp()
        self.test_load_radiograph()

    def test_load_radiograph(self):
        import tempfile

        from RheumImagingDemo.hand_phantom import generate_cohort

        cohort = generate_cohort(tempfile.mkdtemp(), 2, seed=0)
        node = RheumTextureLogic().lib.load_radiograph(cohort.parent / "images" / "RA0001.dcm")
        self.assertIsNotNone(node.GetImageData())
        self.assertEqual(node.GetAttribute("RheumImaging.Calibration"), "ImagerPixelSpacing")
        logging.info("RheumTexture load test passed")
