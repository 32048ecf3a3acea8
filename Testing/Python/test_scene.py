"""Scenes are saved where the user says, never over their files, and read back whole."""

from __future__ import annotations

import numpy as np
import pytest
import vtk

from RheumImagingLib.errors import InputError
from RheumImagingLib.imageio import array_from_volume, spacing_mm, volume_from_array
from RheumImagingLib.scene import load_scene, place_under_patient, provenance, save_bundle, save_scene, set_provenance


def _populated(scene):
    pixels = np.arange(12 * 16, dtype=np.float32).reshape(12, 16)
    volume = volume_from_array(scene, pixels, (0.2, 0.3), "hand", "ImagerPixelSpacing", {"PatientID": "P7"})
    curve = scene.AddNewNodeByClass("vtkMRMLMarkupsClosedCurveNode", "MC2")
    for p in [(1, 2, 0), (3, 2, 0), (3, 5, 0)]:
        curve.AddControlPoint(vtk.vtkVector3d(*p))
    table = scene.AddNewNodeByClass("vtkMRMLTableNode", "scores")
    table.AddColumn().SetName("bone")
    table.SetCellText(table.AddEmptyRow(), 0, "MC2")
    set_provenance(table, bundle="ra_bone_texture", checkpoint_sha256="abc")
    for node in (volume, curve, table):
        place_under_patient(scene, node, "P7")
    return pixels


def _check(scene, pixels):
    import slicer

    volume = scene.GetFirstNodeByName("hand")
    np.testing.assert_array_equal(array_from_volume(volume), pixels)
    np.testing.assert_allclose(spacing_mm(volume), (0.2, 0.3))
    assert scene.GetFirstNodeByName("MC2").GetNumberOfControlPoints() == 3
    table = scene.GetFirstNodeByName("scores")
    assert table.GetCellText(0, 0) == "MC2"
    assert provenance(table) == {"bundle": "ra_bone_texture", "checkpoint_sha256": "abc"}
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    assert sh.GetItemName(sh.GetItemParent(sh.GetItemByDataNode(table))) == "P7"


def test_scene_folder_round_trip(scene, tmp_path):
    pixels = _populated(scene)
    save_scene(scene, tmp_path / "out")
    _check(load_scene(tmp_path / "out" / "scene.mrml"), pixels)


def test_scene_saved_to_a_relative_folder_reloads(scene, tmp_path, monkeypatch):
    """Command lines get folders relative to where the user stands; the scene must not depend on it."""
    pixels = _populated(scene)
    monkeypatch.chdir(tmp_path)
    save_scene(scene, "out/case")
    monkeypatch.chdir("/")
    _check(load_scene(tmp_path / "out" / "case" / "scene.mrml"), pixels)


def test_mrb_round_trip(scene, tmp_path):
    pixels = _populated(scene)
    _check(load_scene(save_bundle(scene, tmp_path / "case.mrb")), pixels)


def test_save_never_overwrites_without_being_asked(scene, tmp_path):
    _populated(scene)
    (tmp_path / "out").mkdir()
    mine = tmp_path / "out" / "hand.nrrd"
    mine.write_text("the user's file")
    with pytest.raises(InputError, match="would overwrite"):
        save_scene(scene, tmp_path / "out")
    assert mine.read_text() == "the user's file"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["hand.nrrd"]
    (tmp_path / "case.mrb").write_text("x")
    with pytest.raises(InputError, match="already exists"):
        save_bundle(scene, tmp_path / "case.mrb")


def test_load_command_writes_a_scene_that_reloads(tmp_path, capsys):
    import os

    from RheumTextureLib.rheumtexture_cli import main

    data_store = pytest.importorskip("data_store")
    aloka = os.path.join(os.path.dirname(data_store.__file__), "data", "gdcm-US-ALOKA-16.dcm")
    assert main(["load", aloka, "--out", str(tmp_path / "scene")]) == 0
    assert "US region" in capsys.readouterr().out
    reloaded = load_scene(tmp_path / "scene" / "scene.mrml")
    node = reloaded.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
    np.testing.assert_allclose(spacing_mm(node), (0.38265, 0.38265), atol=1e-4)
    assert main(["load", aloka, "--out", str(tmp_path / "scene")]) == 2  # refuses to overwrite
