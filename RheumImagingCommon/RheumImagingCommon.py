"""Hidden Slicer module that ships the code both RheumImaging modules share
(``RheumImagingLib``: image I/O, MRML scenes, statistics, bundle running)."""

from slicer.ScriptedLoadableModule import ScriptedLoadableModule


class RheumImagingCommon(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "RheumImaging Common"
        self.parent.categories = ["Rheumatology"]
        self.parent.dependencies = []
        self.parent.contributors = ["SlicerRheumImaging contributors"]
        self.parent.helpText = "Shared code of the RheumTexture and SjogrenUS modules."
        self.parent.acknowledgementText = ""
        self.parent.hidden = True
