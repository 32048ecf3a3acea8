"""RheumTexture logic on an MRML scene given by the caller (Slicer's or a test's)."""

from __future__ import annotations


class RheumTextureLogic:
    """Works on ``scene``; the Slicer module hands it ``slicer.mrmlScene``."""

    def __init__(self, scene):
        self.scene = scene

    def load_radiograph(self, path, frame: int | None = None):
        """Load a hand radiograph (DICOM CR/DX/SC, PNG, TIFF) as a calibrated volume node."""
        from RheumImagingLib.imageio import load_volume

        return load_volume(self.scene, path, frame=frame)
