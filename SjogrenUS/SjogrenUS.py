"""SjogrenUS: ultrasound scoring of primary Sjogren's syndrome (salivary glands, buccal mucosa).

Thin Slicer module: the widget only wires the UI to ``SjogrenUSLib``; all logic
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

from SjogrenUSLib.logic import SjogrenUSLogic as _LibLogic


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


@parameterNodeWrapper
class SjogrenUSParameterNode:
    inputVolume: vtkMRMLScalarVolumeNode
    imagePath: str = ""


class SjogrenUSWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    def __init__(self, parent=None):
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None

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
        with slicer.util.tryWithErrorDisplay("Failed to load the ultrasound image.", waitCursor=True):
            node = self.logic.lib.load_ultrasound(self.ui.imagePathLineEdit.currentPath)
            self._parameterNode.inputVolume = node
            slicer.util.setSliceViewerLayers(background=node, fit=True)


class SjogrenUSLogic(ScriptedLoadableModuleLogic):
    """Slicer-side logic: hands ``slicer.mrmlScene`` to the Qt-free library logic."""

    def __init__(self):
        ScriptedLoadableModuleLogic.__init__(self)
        self.lib = _LibLogic(slicer.mrmlScene)

    def getParameterNode(self):
        return SjogrenUSParameterNode(super().getParameterNode())


class SjogrenUSTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (ctest); the full suite runs on slicer-core under pytest."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_load_ultrasound()

    def test_load_ultrasound(self):
        from pydicom.data import get_testdata_file

        node = SjogrenUSLogic().lib.load_ultrasound(get_testdata_file("US1_UNCR.dcm"))
        self.assertIsNotNone(node.GetImageData())
        logging.info("SjogrenUS load test passed")
