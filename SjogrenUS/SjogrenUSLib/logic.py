"""SjogrenUS logic on an MRML scene given by the caller (Slicer's or a test's)."""

from __future__ import annotations


class SjogrenUSLogic:
    """Works on ``scene``; the Slicer module hands it ``slicer.mrmlScene``."""

    def __init__(self, scene):
        self.scene = scene

    def load_ultrasound(self, path, frame: int | None = None):
        """Load a B-mode ultrasound image (DICOM US, PNG, TIFF) as a volume node with its calibration."""
        from RheumImagingLib.imageio import load_volume

        return load_volume(self.scene, path, frame=frame)
