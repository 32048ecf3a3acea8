"""Radiograph -> metacarpal contours -> distal-third texture scores, with both bundles
loaded once. Used by the Slicer module, ``rheumtexture score`` and the demo."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from RheumImagingLib.bundle import default_bundle_root
from RheumImagingLib.errors import InputError

CONTOUR_BUNDLE = "metacarpal_contour"
TEXTURE_BUNDLE = "ra_bone_texture"


class HandScorer:
    """The contour model and the five-fold texture ensemble of one bundle folder."""

    def __init__(self, bundle_root: str | Path | None = None, device: str = "cpu", runtime: str = "auto"):
        from .contour import MetacarpalContourer
        from .texture import TextureEnsemble

        self.bundle_root = Path(bundle_root or default_bundle_root()).resolve()
        for name in (CONTOUR_BUNDLE, TEXTURE_BUNDLE):
            if not (self.bundle_root / name).is_dir():
                raise InputError(self.bundle_root, f"no {name} bundle in this folder")
        self.contourer = MetacarpalContourer(self.bundle_root / CONTOUR_BUNDLE, device=device, runtime=runtime)
        self.ensemble = TextureEnsemble(self.bundle_root / TEXTURE_BUNDLE, device=device, runtime=runtime)

    def contour(self, pixels: np.ndarray) -> dict:
        return self.contourer.predict(pixels)

    def score(self, pixels: np.ndarray, control_points: dict) -> dict:
        return self.ensemble.score(pixels, control_points)

    def training_images(self) -> dict | None:
        """sha256 -> patient_id of the radiographs the texture models were trained on (None: not recorded)."""
        return self.ensemble.training_images()

    def distal_third_frame(self, control_points) -> dict:
        return self.ensemble.distal_third_frame(control_points)

    def provenance(self) -> dict:
        contour = {f"contour_{k}": v for k, v in self.contourer.provenance().items()}
        texture = {f"texture_{k}": v for k, v in self.ensemble.provenance().items()}
        return {**contour, **texture}
