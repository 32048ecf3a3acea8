""""Add to training cohort" on slicer-core scenes: what the user corrected by hand is what is written,
the DICOM behind a volume is referenced (not copied), cohort.csv is replaced atomically, and nothing
already in the cohort is overwritten."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from RheumImagingLib.anatomy import BONES, US_SEGMENTS
from RheumImagingLib.annotations import ImageGeometry, read_curves, read_masks
from RheumImagingLib.errors import InputError
from RheumImagingLib.imageio import load_volume, read_image
from RheumImagingLib.training_cohort import add_hand, add_ultrasound


@pytest.fixture(scope="module")
def hand_phantoms(tmp_path_factory):
    from RheumImagingDemo.hand_phantom import generate_cohort

    out = tmp_path_factory.mktemp("add_hand") / "phantoms"
    generate_cohort(out, 2, 3, size=(128, 104), legacy_png=False)
    return out / "images"


@pytest.fixture(scope="module")
def us_phantoms(tmp_path_factory):
    from RheumImagingDemo.us_phantom import generate_cohort

    out = tmp_path_factory.mktemp("add_us") / "phantoms"
    generate_cohort(out, 1, 4, shape=(128, 128), mucosa_spacing_mm=0.05, gland_spacing_mm=0.2, legacy_png=False)
    return out / "images"


def _rows(cohort):
    with open(cohort / "cohort.csv", newline="") as f:
        return list(csv.DictReader(f))


def _ras(volume, xy):
    """RAS of pixel (col, row) through the volume's own IJK->RAS matrix."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return np.array(matrix.MultiplyPoint((float(xy[0]), float(xy[1]), 0.0, 1.0))[:3])


def _curve_nodes(scene, volume, curves: dict) -> dict:
    """One closed-curve node per bone, its control points at the curve's pixels (col, row) on ``volume``."""
    nodes = {}
    for bone, xy in curves.items():
        node = scene.AddNewNodeByClass("vtkMRMLMarkupsClosedCurveNode", bone)
        for point in xy:
            node.AddControlPoint(*_ras(volume, point))
        nodes[bone] = node
    return nodes


def _slicer_curves(scene, path):
    """The curves of a markups file as Slicer's markups reader loads them (one node per markup)."""
    import slicer

    storage = slicer.vtkMRMLMarkupsJsonStorageNode()
    scene.AddNode(storage)
    nodes = [storage.AddNewMarkupsNodeFromFile(str(path), "", i) for i in range(len(BONES))]
    return {node.GetName(): node for node in nodes}


def test_a_control_point_moved_by_hand_is_what_add_hand_writes(hand_phantoms, tmp_path, scene):
    dicom = hand_phantoms / "RA0001.dcm"
    volume = load_volume(scene, dicom)
    geometry = ImageGeometry.of_image(read_image(dicom))
    truth = read_curves(hand_phantoms / "RA0001.mrk.json", geometry)
    curves = _slicer_curves(scene, hand_phantoms / "RA0001.mrk.json")
    moved = truth["MC3"][7] + np.array([3.0, -2.0])  # the user drags one point 3 px right, 2 px up
    curves["MC3"].SetNthControlPointPosition(7, *_ras(volume, moved))
    cohort = tmp_path / "cohort"
    row = add_hand(cohort, volume_node=volume, curves=curves, patient_id="RA0001", label=1, age=55, sex="F")
    assert _rows(cohort) == [row]
    assert row["image"] == os.path.relpath(dicom, cohort)  # the DICOM is referenced, not copied
    assert (row["label"], row["age"], row["sex"], row["pixel_spacing_mm"]) == ("1", "55", "F", "")
    assert sorted(p.name for p in (cohort / "images").iterdir()) == ["RA0001.mrk.json"]
    written = read_curves(cohort / row["annotation"], ImageGeometry.of_image(read_image(cohort / row["image"])))
    assert np.allclose(written["MC3"][7], moved, atol=1e-3)
    expected = {**truth, "MC3": np.vstack([truth["MC3"][:7], moved, truth["MC3"][8:]])}
    assert all(np.allclose(written[b], expected[b], atol=1e-3) for b in BONES)


def test_existing_annotation_never_overwritten_and_table_replaced_atomically(
        hand_phantoms, tmp_path, scene, monkeypatch):
    cohort = tmp_path / "cohort"
    volume = load_volume(scene, hand_phantoms / "RA0001.dcm")
    curves = _slicer_curves(scene, hand_phantoms / "RA0001.mrk.json")
    add_hand(cohort, volume_node=volume, curves=curves, patient_id="P1", label=0)
    table, annotation = (cohort / "cohort.csv").read_bytes(), (cohort / "images" / "P1.mrk.json").read_bytes()
    other = load_volume(scene, hand_phantoms / "HC0001.dcm")
    with pytest.raises(InputError, match="P1.mrk.json: already exists"):
        add_hand(cohort, volume_node=other, curves=curves, patient_id="P1", label=0)
    with pytest.raises(InputError, match="RA0001.dcm: is already in"):  # the same image twice
        add_hand(cohort, volume_node=volume, curves=curves, patient_id="P2", label=0)

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        add_hand(cohort, volume_node=other, curves=curves, patient_id="P3", label=1)
    monkeypatch.undo()
    assert (cohort / "cohort.csv").read_bytes() == table  # the previous table whole
    assert (cohort / "images" / "P1.mrk.json").read_bytes() == annotation
    assert sorted(p.name for p in cohort.rglob("*")) == ["P1.mrk.json", "cohort.csv", "images"]  # no leftovers


def test_dicom_behind_a_browser_volume_is_referenced(hand_phantoms, tmp_path, scene):
    import pydicom

    dicom = hand_phantoms / "HC0001.dcm"
    volume = load_volume(scene, dicom)
    volume.RemoveAttribute("RheumImaging.SourceFile")  # as Slicer's DICOM browser loads it
    uid = str(pydicom.dcmread(dicom, stop_before_pixels=True).SOPInstanceUID)
    volume.SetAttribute("DICOM.instanceUIDs", uid)
    curves = _slicer_curves(scene, hand_phantoms / "HC0001.mrk.json")
    row = add_hand(tmp_path / "c", volume_node=volume, curves=curves, patient_id="HC0001", label=0,
                   file_for_instance={uid: str(dicom)}.get)
    assert (tmp_path / "c" / row["image"]).resolve() == dicom.resolve()


def test_a_volume_without_a_file_is_written_with_the_users_spacing(hand_phantoms, tmp_path, scene):
    from RheumImagingLib.imageio import volume_from_array

    image = read_image(hand_phantoms / "HC0001.dcm")
    truth = read_curves(hand_phantoms / "HC0001.mrk.json", ImageGeometry.of_image(image))
    volume = volume_from_array(scene, image.pixels, None, "screenshot")  # no file, no calibration
    volume.SetSpacing(0.3, 0.3, 1.0)  # the user sets the spacing in the Volumes module
    curves = _curve_nodes(scene, volume, truth)
    cohort = tmp_path / "c"
    row = add_hand(cohort, volume_node=volume, curves=curves, patient_id="HC0001", label=1)
    assert row["image"] == "images/HC0001.nrrd" and row["pixel_spacing_mm"] == "0.3"
    written = read_image(cohort / row["image"])
    assert np.array_equal(written.pixels, image.pixels) and not written.calibrated
    geometry = ImageGeometry.of_image(written, float(row["pixel_spacing_mm"]))
    assert geometry.spacing_source == "user-given"
    back = read_curves(cohort / row["annotation"], geometry)
    assert all(np.allclose(back[b], truth[b], atol=1e-3) for b in BONES)


def _slicer_segmentation(scene, path):
    import slicer

    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    return node


def _paint(segmentation, segment_id, volume, mask):
    """Replace a segment with ``mask`` on the volume's grid, as a Segment Editor effect does
    (vtkSlicerSegmentationsModuleLogic::SetBinaryLabelmapToSegment, mode replace)."""
    import slicer
    import vtk
    from vtk.util import numpy_support

    image = slicer.vtkOrientedImageData()
    image.SetDimensions(mask.shape[1], mask.shape[0], 1)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(mask.astype(np.uint8).ravel(), deep=True,
                                                               array_type=vtk.VTK_UNSIGNED_CHAR))
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    image.SetImageToWorldMatrix(matrix)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    assert logic.SetBinaryLabelmapToSegment(image, segmentation, segment_id, logic.MODE_REPLACE)


def test_a_segment_edited_before_add_is_what_add_ultrasound_writes(us_phantoms, tmp_path, scene):
    cohort = tmp_path / "cohort"
    gland = us_phantoms / "PSS0001_parotid_left.dcm"
    volume = load_volume(scene, gland)
    geometry = ImageGeometry.of_image(read_image(gland))
    truth = read_masks(us_phantoms / "PSS0001_parotid_left.seg.nrrd", geometry, US_SEGMENTS)
    segmentation = _slicer_segmentation(scene, us_phantoms / "PSS0001_parotid_left.seg.nrrd")
    edited = truth["parenchyma"].copy()
    edited[60:80, 20:50] = True  # the user paints more parenchyma
    edited[truth["focus"]] = False
    assert (edited & ~truth["parenchyma"]).sum() > 100
    segment_id = segmentation.GetSegmentation().GetSegmentIdBySegmentName("parenchyma")
    _paint(segmentation, segment_id, volume, edited)
    row = add_ultrasound(cohort, volume_node=volume, segmentation_node=segmentation, patient_id="PSS0001",
                         site="parotid_left", label=1)
    assert row["parotid_left_image"] == os.path.relpath(gland, cohort)
    assert row["parotid_left_annotation"] == "images/PSS0001_parotid_left.seg.nrrd"
    written = read_masks(cohort / row["parotid_left_annotation"], geometry, US_SEGMENTS)
    assert np.array_equal(written["parenchyma"], edited) and np.array_equal(written["focus"], truth["focus"])

    mucosa = us_phantoms / "PSS0001_mucosa.dcm"  # a second site fills the same patient's row
    row = add_ultrasound(cohort, volume_node=load_volume(scene, mucosa), patient_id="PSS0001", site="mucosa",
                         segmentation_node=_slicer_segmentation(scene, us_phantoms / "PSS0001_mucosa.seg.nrrd"),
                         label=1)
    rows = _rows(cohort)
    assert len(rows) == 1 and rows[0]["mucosa_annotation"] == "images/PSS0001_mucosa.seg.nrrd"
    assert rows[0]["parotid_left_annotation"] == "images/PSS0001_parotid_left.seg.nrrd"
    with pytest.raises(InputError, match="already has parotid_left_image"):
        add_ultrasound(cohort, volume_node=volume, segmentation_node=segmentation, patient_id="PSS0001",
                       site="parotid_left", label=1)
    assert _rows(cohort) == rows
