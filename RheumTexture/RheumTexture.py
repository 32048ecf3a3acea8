"""RheumTexture: bone texture score of rheumatoid arthritis on hand radiographs.

Thin Slicer module: the widget only wires the UI to ``RheumTextureLib``; all logic
runs on the scene it is given, so it is tested outside Slicer on slicer-core.
"""

import logging

import slicer
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.util import VTKObservationMixin
from MRMLCorePython import vtkMRMLScalarVolumeNode

from RheumTextureLib.logic import BONES, STUDY_THRESHOLD
from RheumTextureLib.logic import RheumTextureLogic as _LibLogic


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


@parameterNodeWrapper
class RheumTextureParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    imagePath: str = ""
    bundlePath: str = ""
    age: float = 0.0
    sex: str = "F"
    threshold: float = STUDY_THRESHOLD


class RheumTextureWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

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
        self.ui.inputVolumeSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onInputChanged)
        self.initializeParameterNode()

    def cleanup(self):
        self.removeObservers()

    def enter(self):
        self.initializeParameterNode()

    def exit(self):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None

    def onSceneStartClose(self, caller, event):
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event):
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self):
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode):
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)

    def onLoadButton(self):
        with slicer.util.tryWithErrorDisplay("Failed to load the radiograph.", waitCursor=True):
            node = self.logic.lib.load_radiograph(self.ui.imagePathLineEdit.currentPath)
            self._parameterNode.inputVolume = node
            slicer.util.setSliceViewerLayers(background=node, fit=True)

    def onInputChanged(self, volume):
        """Pre-fill age and sex from DICOM; show earlier results and watch their contours."""
        self.ui.applyButton.enabled = volume is not None
        if volume is None:
            return
        age = volume.GetAttribute("RheumImaging.PatientAge")
        sex = volume.GetAttribute("RheumImaging.PatientSex")
        if age:
            self._parameterNode.age = float(age)
        if sex in ("F", "M"):
            self._parameterNode.sex = sex
        self.showResults(volume)

    def onApplyButton(self):
        volume = self._parameterNode.inputVolume
        with slicer.util.tryWithErrorDisplay("Texture scoring failed.", waitCursor=True):
            self.logic.lib.load_bundles(self._parameterNode.bundlePath or None)
            self.logic.lib.process(volume, age=self._parameterNode.age or None, sex=self._parameterNode.sex,
                                   threshold=self._parameterNode.threshold, progress=self.onProgress)
            self.showResults(volume)

    def onProgress(self, fraction, message):
        # Processing runs in the main thread; repainting between steps keeps the UI responsive.
        self.ui.progressBar.value = int(100 * fraction)
        self.ui.statusLabel.text = message
        slicer.app.processEvents()

    def showResults(self, volume):
        table = self.logic.lib.table_node(volume)
        self.ui.resultsTableView.setMRMLTableNode(table)
        self.removeObservers(self.onCurveEdited)
        for bone in BONES:
            curve = self.logic.lib.curve_node(volume, bone)
            if curve is not None:
                self.addObserver(curve, curve.PointEndInteractionEvent, self.onCurveEdited)

    def onCurveEdited(self, curve, event):
        """A dragged control point re-cuts and re-scores that bone only."""
        volume = self._parameterNode.inputVolume
        with slicer.util.tryWithErrorDisplay("Re-scoring failed.", waitCursor=True):
            self.logic.lib.rescore_bone(volume, curve.GetAttribute("RheumTexture.Bone"))


class RheumTextureLogic(ScriptedLoadableModuleLogic):
    """Slicer-side logic: hands ``slicer.mrmlScene`` to the Qt-free library logic."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.lib = _LibLogic(slicer.mrmlScene)

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
