"""Annotations in Slicer's own formats, checked against slicer-core itself: what we write Slicer reads
with the right names, positions and terminology; what Slicer writes we read back to the pixels drawn."""

from __future__ import annotations

import json

import numpy as np
import pytest

from RheumImagingLib.anatomy import BONES, TERMINOLOGY, US_SEGMENTS
from RheumImagingLib.annotations import (ImageGeometry, mask_to_contour, prepare_image, read_curves, read_masks,
                                         write_curves, write_segmentation)
from RheumImagingLib.errors import InputError

ROWS, COLS = 48, 64
SPACING = (0.5, 0.25)  # (row, col) mm: unequal, so a swapped axis shows
GEOMETRY = ImageGeometry((ROWS, COLS), SPACING, "calibrated")
CURVES = {  # pixel (col, row), drawn on the image
    "MC2": np.array([[5.0, 4.0], [15.5, 6.0], [14.0, 30.0], [6.0, 28.25]]),
    "MC3": np.array([[25.0, 3.0], [35.0, 3.5], [36.0, 40.0], [24.0, 41.0], [22.0, 20.0]]),
    "MC4": np.array([[45.0, 8.0], [55.0, 9.0], [54.0, 35.0]]),
}


def _volume(scene, geometry=GEOMETRY):
    """The image as Slicer shows it (volume_from_array: the geometry the annotations are drawn on)."""
    from RheumImagingLib.imageio import volume_from_array

    return volume_from_array(scene, np.zeros(geometry.shape, np.float32), geometry.spacing_mm, "image")


def _ras_of_pixels(volume, xy):
    """RAS of pixel centres through the volume node's own IJK->RAS matrix (independent of ImageGeometry)."""
    import vtk

    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return np.array([matrix.MultiplyPoint((float(x), float(y), 0.0, 1.0))[:3] for x, y in xy])


def _masks():
    yy, xx = np.mgrid[0:ROWS, 0:COLS]
    parenchyma = (xx - 30) ** 2 / 400 + (yy - 25) ** 2 / 150 <= 1
    return {"epithelium": yy < 5, "submucosa": (yy >= 5) & (yy < 9),
            "parenchyma": parenchyma, "focus": (xx - 30) ** 2 + (yy - 25) ** 2 <= 9}  # focus inside parenchyma


# ------------------------------------------------------------------ geometry
def test_geometry_maps_pixels_as_the_volume_slicer_shows(scene):
    volume = _volume(scene)
    xy = np.array([[0.0, 0.0], [10.0, 3.0], [63.0, 47.0]])
    assert np.allclose(GEOMETRY.pixel_to_ras(xy), _ras_of_pixels(volume, xy))
    assert np.allclose(GEOMETRY.ras_to_pixel(GEOMETRY.pixel_to_ras(xy)), xy)
    assert ImageGeometry.of_volume(volume) == ImageGeometry((ROWS, COLS), SPACING, "calibrated")


def test_spacing_source_calibrated_user_given_or_none(tmp_path, scene):
    from PIL import Image

    from RheumImagingDemo.dicom_write import write_dicom
    from RheumImagingLib.imageio import read_image, volume_from_array

    pixels = np.arange(12 * 10, dtype=np.uint16).reshape(12, 10)
    write_dicom(tmp_path / "a.dcm", pixels, modality="DX", entropy=["a"], patient_id="P",
                elements={"ImagerPixelSpacing": [0.2, 0.1]})
    Image.fromarray(pixels.astype(np.uint8)).save(tmp_path / "a.png")
    dicom, png = read_image(tmp_path / "a.dcm"), read_image(tmp_path / "a.png")
    assert ImageGeometry.of_image(dicom, 0.5) == ImageGeometry((12, 10), (0.2, 0.1), "calibrated")
    assert ImageGeometry.of_image(png, 0.5) == ImageGeometry((12, 10), (0.5, 0.5), "user-given")
    assert ImageGeometry.of_image(png) == ImageGeometry((12, 10), (1.0, 1.0), "none (1 mm per pixel)")
    with pytest.raises(InputError, match="positive"):
        ImageGeometry.of_image(png, -1)
    uncalibrated = volume_from_array(scene, png.pixels, None, "png", png.calibration)
    assert ImageGeometry.of_volume(uncalibrated).spacing_source == "none (1 mm per pixel)"
    uncalibrated.SetSpacing(0.3, 0.3, 1.0)  # the user sets the spacing in the Volumes module
    assert ImageGeometry.of_volume(uncalibrated) == ImageGeometry((12, 10), (0.3, 0.3), "user-given")


# ------------------------------------------------------------------ markups curves
def test_written_curves_load_in_slicer_as_closed_curves(tmp_path, scene):
    import slicer

    path = write_curves(tmp_path / "hand.mrk.json", CURVES, GEOMETRY)
    volume = _volume(scene)
    storage = slicer.vtkMRMLMarkupsJsonStorageNode()
    scene.AddNode(storage)
    for index, (name, xy) in enumerate(CURVES.items()):
        node = storage.AddNewMarkupsNodeFromFile(str(path), "", index)
        assert node is not None and node.IsA("vtkMRMLMarkupsClosedCurveNode")
        assert node.GetName() == name
        positions = np.array([node.GetNthControlPointPosition(i) for i in range(node.GetNumberOfControlPoints())])
        assert np.allclose(positions, _ras_of_pixels(volume, xy), atol=1e-3)
    assert json.loads(path.read_text())["markups"][0]["coordinateSystem"] == "LPS"


def _slicer_curve_file(scene, path, name, xy, system):
    """A closed curve placed in a scene at the pixels ``xy`` of the volume, saved by Slicer's own storage node."""
    import slicer

    volume = scene.GetFirstNodeByName("image") or _volume(scene)
    node = scene.AddNewNodeByClass("vtkMRMLMarkupsClosedCurveNode", name)
    for point in _ras_of_pixels(volume, xy):
        node.AddControlPoint(*point)
    storage = slicer.vtkMRMLMarkupsJsonStorageNode()
    scene.AddNode(storage)
    storage.SetCoordinateSystem(system)
    storage.SetFileName(str(path))
    assert storage.WriteData(node)
    return path


@pytest.mark.parametrize("system", ["LPS", "RAS"])
def test_curves_saved_by_slicer_read_back_to_the_pixels_placed(tmp_path, scene, system):
    import slicer

    code = getattr(slicer.vtkMRMLStorageNode, f"CoordinateSystem{system}")
    files = [_slicer_curve_file(scene, tmp_path / f"{name}.mrk.json", name, xy, code) for name, xy in CURVES.items()]
    assert json.loads(files[0].read_text())["markups"][0]["coordinateSystem"] == system
    curves = read_curves(files, GEOMETRY)  # one curve per file
    assert set(curves) == set(CURVES)
    for name, xy in CURVES.items():
        assert np.allclose(curves[name], xy, atol=1e-3)
    # several curves in one file, as the markups schema allows ("markups" is a list)
    docs = [json.loads(f.read_text()) for f in files]
    combined = tmp_path / "hand.mrk.json"
    named = [{**d["markups"][0], "name": name} for d, name in zip(docs, CURVES)]  # Slicer writes no name
    combined.write_text(json.dumps({**docs[0], "markups": named}))
    assert all(np.allclose(read_curves(combined, GEOMETRY)[n], xy, atol=1e-3) for n, xy in CURVES.items())


def test_bad_markups_files_are_named_with_the_problem(tmp_path):
    write_curves(tmp_path / "hand.mrk.json", CURVES, GEOMETRY)
    with pytest.raises(InputError, match="hand.mrk.json: already exists"):
        write_curves(tmp_path / "hand.mrk.json", CURVES, GEOMETRY)
    (tmp_path / "broken.mrk.json").write_text("{not json")
    with pytest.raises(InputError, match="broken.mrk.json: not a readable markups JSON"):
        read_curves(tmp_path / "broken.mrk.json", GEOMETRY)
    with pytest.raises(InputError, match="missing.mrk.json: no such markups file"):
        read_curves(tmp_path / "missing.mrk.json", GEOMETRY)
    with pytest.raises(InputError, match="also in"):
        read_curves([tmp_path / "hand.mrk.json", tmp_path / "hand.mrk.json"], GEOMETRY)
    coarse = ImageGeometry((ROWS, COLS), (0.05, 0.05), "user-given")  # drawn at another spacing: off the image
    with pytest.raises(InputError, match="lies outside the image"):
        read_curves(tmp_path / "hand.mrk.json", coarse)


# ------------------------------------------------------------------ segmentations and labelmaps
def test_written_segmentation_loads_in_slicer_with_names_and_terminology(tmp_path, scene):
    import slicer
    import vtk

    from RheumImagingLib.imageio import array_from_volume

    masks = _masks()
    path = write_segmentation(tmp_path / "site.seg.nrrd", masks, GEOMETRY)
    volume = _volume(scene)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    segmentation = node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    assert names == list(masks)
    for name, mask in masks.items():
        segment = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(name))
        tag = vtk.mutable("") if hasattr(vtk, "mutable") else None
        assert segment.GetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), tag)
        assert str(tag) == TERMINOLOGY[name]
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segmentation.GetSegmentIdBySegmentName(name))
        labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode")
        assert slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(node, ids, labelmap, volume)
        assert np.array_equal(array_from_volume(labelmap) > 0, mask), name  # overlapping focus kept
    # the SNOMED CT codes are Slicer's: Bone SCT 272673000 in the hand, salivary gland SCT 385294005
    assert "SCT^272673000^Bone" in TERMINOLOGY[BONES[0]] and "SCT^85562004^Hand" in TERMINOLOGY[BONES[0]]
    assert "SCT^385294005^Salivary gland" in TERMINOLOGY["parenchyma"]


def _labelmap_node(scene, labels):
    """A labelmap volume node of ``labels`` on the image's volume geometry (as drawn in Slicer on it)."""
    import vtk
    from vtk.util import numpy_support

    volume = _volume(scene)
    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "drawn")
    image = vtk.vtkImageData()
    image.SetDimensions(COLS, ROWS, 1)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(labels.ravel(), deep=True,
                                                               array_type=vtk.VTK_UNSIGNED_CHAR))
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    node.SetIJKToRASMatrix(matrix)
    node.SetAndObserveImageData(image)
    return node


def test_segmentation_saved_by_slicer_reads_back(tmp_path, scene):
    import slicer

    masks = _masks()
    labels = np.zeros((ROWS, COLS), np.uint8)
    for value, name in enumerate(("epithelium", "submucosa", "parenchyma"), start=1):
        labels[masks[name]] = value
    labelmap = _labelmap_node(scene, labels)
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode")
    assert slicer.vtkSlicerSegmentationsModuleLogic.ImportLabelmapToSegmentationNode(labelmap, node)
    segmentation = node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 3
    for i, name in enumerate(("epithelium", "submucosa", "parenchyma")):  # in label order
        segmentation.GetNthSegment(i).SetName(name)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    scene.AddNode(storage)
    storage.SetFileName(str(tmp_path / "drawn.seg.nrrd"))
    assert storage.WriteData(node)
    back = read_masks(tmp_path / "drawn.seg.nrrd", GEOMETRY, US_SEGMENTS)
    assert set(back) == {"epithelium", "submucosa", "parenchyma"}
    for name in back:
        assert np.array_equal(back[name], labels == ("epithelium", "submucosa", "parenchyma").index(name) + 1)


@pytest.mark.parametrize("suffix", [".nrrd", ".nii.gz", ".png"])
def test_plain_labelmap_by_value(tmp_path, scene, suffix):
    import slicer

    labels = np.zeros((ROWS, COLS), np.uint8)
    labels[5:20, 3:15], labels[10:40, 20:30], labels[8:30, 40:50] = 1, 2, 3  # MC2, MC3, MC4
    path = tmp_path / f"bones{suffix}"
    if suffix == ".png":
        from PIL import Image

        Image.fromarray(labels).save(path)
    else:  # written by Slicer's volume storage from a labelmap node on the image's geometry
        node = _labelmap_node(scene, labels)
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
        scene.AddNode(storage)
        storage.SetFileName(str(path))
        assert storage.WriteData(node)
    masks = read_masks(path, GEOMETRY, BONES)
    assert list(masks) == list(BONES)
    for value, bone in enumerate(BONES, start=1):
        assert np.array_equal(masks[bone], labels == value)


def test_bad_segmentation_files_are_named_with_the_problem(tmp_path):
    from PIL import Image

    labels = np.zeros((ROWS, COLS), np.uint8)
    labels[2:5, 2:5] = 7
    Image.fromarray(labels).save(tmp_path / "seven.png")
    with pytest.raises(InputError, match=r"seven.png: label value\(s\) \[7\]"):
        read_masks(tmp_path / "seven.png", GEOMETRY, BONES)
    Image.fromarray(labels[:10]).save(tmp_path / "small.png")
    with pytest.raises(InputError, match="small.png: labelmap is 64 x 10 pixels"):
        read_masks(tmp_path / "small.png", GEOMETRY, BONES)
    (tmp_path / "junk.seg.nrrd").write_bytes(b"not nrrd")
    with pytest.raises(InputError, match="junk.seg.nrrd: not a NRRD file"):
        read_masks(tmp_path / "junk.seg.nrrd", GEOMETRY, BONES)
    write_segmentation(tmp_path / "us.seg.nrrd", {"parenchyma": _masks()["parenchyma"]}, GEOMETRY)
    with pytest.raises(InputError, match="us.seg.nrrd: holds none of MC2, MC3, MC4 .it holds: parenchyma"):
        read_masks(tmp_path / "us.seg.nrrd", GEOMETRY, BONES)
    with pytest.raises(InputError, match="us.seg.nrrd: already exists"):
        write_segmentation(tmp_path / "us.seg.nrrd", {"parenchyma": _masks()["parenchyma"]}, GEOMETRY)


# ------------------------------------------------------------------ contours
def test_mask_to_contour_round_trip():
    from skimage.draw import polygon

    from RheumImagingLib.annotations import _signed_area

    xy = np.array([[20.0, 10.0], [80.0, 18.0], [90.0, 70.0], [50.0, 95.0], [15.0, 60.0]])
    mask = np.zeros((110, 110), bool)
    rr, cc = polygon(xy[:, 1], xy[:, 0], mask.shape)
    mask[rr, cc] = True
    mask[3:6, 100:104] = True  # a speck: not the outer boundary
    contour = mask_to_contour(mask)
    true_area = abs(_signed_area(xy))  # shoelace of the drawn polygon, by hand: 9115 / 2 px^2
    assert true_area == pytest.approx(4557.5)
    assert abs(_signed_area(contour)) == pytest.approx(true_area, rel=0.03)
    assert _signed_area(contour) > 0
    assert contour[:, 0].min() >= 14 and contour[:, 0].max() <= 91 and contour[:, 1].max() <= 96


# ------------------------------------------------------------------ the one image path
def test_prepare_image_caches_the_decoded_image_once(tmp_path):
    from RheumImagingDemo.dicom_write import write_dicom
    from RheumImagingLib.imageio import read_image

    pixels = (np.arange(20 * 16, dtype=np.uint16).reshape(20, 16) * 7)
    write_dicom(tmp_path / "a.dcm", pixels, modality="DX", entropy=["a"], patient_id="P",
                photometric="MONOCHROME1", elements={"ImagerPixelSpacing": [0.2, 0.2]})
    path, geometry = prepare_image(tmp_path / "a.dcm", tmp_path / "prepared")
    assert path.parent == tmp_path / "prepared" and len(path.stem) == 64
    assert geometry == ImageGeometry((20, 16), (0.2, 0.2), "calibrated")
    cached = np.load(path)
    assert cached.dtype == np.float32 and np.array_equal(cached, read_image(tmp_path / "a.dcm").pixels)
    stamp = path.stat().st_mtime_ns
    assert prepare_image(tmp_path / "a.dcm", tmp_path / "prepared")[0] == path and path.stat().st_mtime_ns == stamp
