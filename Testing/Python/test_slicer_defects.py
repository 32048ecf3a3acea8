"""Defects seen only inside Slicer, checked on slicer-core: where the distal-third ROI box lies,
RGB volumes, and which bundles a cleared bundle field means."""

from __future__ import annotations

import json

from pathlib import Path

import numpy as np
import pytest

from RheumImagingDemo.hand_phantom import render_hand
from RheumImagingLib.bundle import bundle_imports, default_bundle_root
from RheumImagingLib.geometry import ras_to_pixel
from RheumImagingLib.imageio import volume_from_array
from RheumTextureLib.logic import RheumTextureLogic


class _FrameOnlyScorer:
    """The ensemble's distal-third geometry without its networks (the ROI needs nothing else)."""

    def distal_third_frame(self, control_points, spacing_mm=None):
        root = default_bundle_root() / "ra_bone_texture"
        config = json.loads((root / "configs" / "inference.json").read_text())
        with bundle_imports(root):
            from scripts.roi import patch_frame

            return patch_frame(np.asarray(control_points, dtype=float), config["patch_size"], spacing_mm=spacing_mm,
                               patch_spacing_mm=config["patch_spacing_mm"])


def test_roi_centre_lies_in_the_bones_distal_third(scene):
    pixels, truth = render_hand(np.random.default_rng(5), 0, "strong", pixel_spacing_mm=0.1)
    volume = volume_from_array(scene, pixels.astype(np.float32), (0.1, 0.1), "hand", "test")
    logic = RheumTextureLogic(scene, scorer=_FrameOnlyScorer())
    for name, bone in truth["bones"].items():
        frame = logic.scorer.distal_third_frame(np.asarray(bone["contour"], dtype=float), (0.1, 0.1))
        logic._update_roi(volume, name, frame, {})
        centre_ras = np.array(logic.roi_node(volume, name).GetCenter())
        centre = ras_to_pixel(volume, [centre_ras])[0][:2]
        # Position along the phantom's true bone axis, 0 at the proximal end, 1 at the distal one.
        distal, proximal = np.asarray(bone["axis"]["distal"]), np.asarray(bone["axis"]["proximal"])
        length = np.linalg.norm(distal - proximal)
        along = (centre - proximal) @ (distal - proximal) / length**2
        across = abs(np.cross(distal - proximal, centre - proximal)) / length
        assert 2 / 3 < along < 1, (name, along)
        assert across < 0.1 * length, (name, across)


def test_rgb_vector_volume_is_read_as_luminance(scene):
    """A colour image Slicer loads as a vtkMRMLVectorVolumeNode passes the scalar-volume selector."""
    import vtk
    from vtk.util import numpy_support

    from RheumImagingLib.errors import InputError
    from RheumImagingLib.imageio import array_from_volume

    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)      # pure red: luminance 0.299 * 255 (ITU-R BT.601 weights)
    rgb[1, 2] = (10, 20, 30)     # 0.299*10 + 0.587*20 + 0.114*30 = 2.99 + 11.74 + 3.42 = 18.15
    image = vtk.vtkImageData()
    image.SetDimensions(3, 2, 1)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(rgb.reshape(-1, 3), deep=True))
    node = scene.AddNewNodeByClass("vtkMRMLVectorVolumeNode", "colour")
    node.SetAndObserveImageData(image)
    gray = array_from_volume(node)
    assert gray.shape == (2, 3)
    assert gray[0, 0] == pytest.approx(76.245, abs=1e-3) and gray[1, 2] == pytest.approx(18.15, abs=1e-3)
    assert gray[0, 1] == 0

    two = vtk.vtkImageData()
    two.SetDimensions(3, 2, 1)
    two.GetPointData().SetScalars(numpy_support.numpy_to_vtk(np.zeros((6, 2), dtype=np.uint8), deep=True))
    node.SetAndObserveImageData(two)
    with pytest.raises(InputError, match="2 components"):
        array_from_volume(node)


def test_cleared_bundle_field_returns_to_the_extensions_bundles(scene, tmp_path, monkeypatch):
    import RheumTextureLib.pipeline as pipeline

    class Recorder:
        def __init__(self, root, device="cpu"):
            self.bundle_root = Path(root).resolve()

    monkeypatch.setattr(pipeline, "HandScorer", Recorder)
    logic = RheumTextureLogic(scene)
    assert logic.load_bundles(tmp_path).bundle_root == tmp_path.resolve()
    same = logic.scorer
    assert logic.load_bundles(tmp_path) is same  # loaded once, reused
    assert logic.load_bundles(None).bundle_root == default_bundle_root().resolve()
