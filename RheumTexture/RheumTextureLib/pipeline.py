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
        from .quality import ContourQuality
        from .texture import TextureEnsemble

        self.bundle_root = Path(bundle_root or default_bundle_root()).resolve()
        for name in (CONTOUR_BUNDLE, TEXTURE_BUNDLE):
            if not (self.bundle_root / name).is_dir():
                raise InputError(self.bundle_root, f"no {name} bundle in this folder")
        self.contourer = MetacarpalContourer(self.bundle_root / CONTOUR_BUNDLE, device=device, runtime=runtime)
        self.ensemble = TextureEnsemble(self.bundle_root / TEXTURE_BUNDLE, device=device, runtime=runtime)
        self.quality = ContourQuality(self.bundle_root / CONTOUR_BUNDLE, self.contourer)

    def contour(self, pixels: np.ndarray) -> dict:
        """Contours of an image in the trained convention (right hand, fingers up)."""
        return self.contourer.predict(pixels)

    def score(self, pixels: np.ndarray, control_points: dict, spacing_mm=None) -> dict:
        return self.ensemble.score(pixels, control_points, spacing_mm)

    def distal_third_frame(self, control_points, spacing_mm=None) -> dict:
        return self.ensemble.distal_third_frame(control_points, spacing_mm)

    def analyse(self, pixels: np.ndarray, spacing_mm=None, metadata: dict | None = None, orientation=None) -> dict:
        """One radiograph of either hand, in any of four quarter turns: {"contours" (bone -> {"control_points"}
        in this image's pixels, as :meth:`contour` gives them), "scores", "orientation", "qc" (the image's reasons
        not to trust it, empty when ok; see ``quality.py``), "bone_qc" (bone -> its share of them)}.

        The contour model sees the image turned and mirrored into its convention; the contours
        come back in this image's pixels and the texture is cut from this image (the cut is the
        same for a mirrored image and contour, see the bundle's ``scripts/roi.py``). ``orientation``: the image's
        ``orientation.detect`` when the caller found it already (``rheumtexture score`` does, beside the previous
        image's networks)."""
        from .orientation import detect, points_from_convention, to_convention
        from .quality import reasons_per_bone

        pixels = np.asarray(pixels, dtype=np.float32)
        orientation = detect(pixels, metadata) if orientation is None else orientation
        upright = np.ascontiguousarray(to_convention(pixels, orientation))
        # the quality control reuses the logits; the control points are all that is scored, edited and stored
        found, logits = self.contourer.predict_with_logits(upright, outlines=False)
        contours = {bone: {"control_points": points_from_convention(c["control_points"], orientation, pixels.shape)}
                    for bone, c in found.items()}
        scores = self.score(pixels, {bone: c["control_points"] for bone, c in contours.items()}, spacing_mm)
        qc = list(orientation.qc) + self.quality.reasons({bone: c["control_points"] for bone, c in found.items()},
                                                         upright, logits)
        if spacing_mm is None:
            qc.append(f"spacing unknown (assumed {self.ensemble.fallback_spacing_mm:g} mm)")
        return {"contours": contours, "scores": scores, "orientation": orientation, "qc": qc,
                "bone_qc": reasons_per_bone(qc, tuple(contours))}

    def training_images(self) -> dict | None:
        """sha256 -> patient_id of the radiographs the texture models were trained on (None: not recorded)."""
        return self.ensemble.training_images()

    def provenance(self) -> dict:
        contour = {f"contour_{k}": v for k, v in self.contourer.provenance().items()}
        texture = {f"texture_{k}": v for k, v in self.ensemble.provenance().items()}
        return {**contour, **texture}
