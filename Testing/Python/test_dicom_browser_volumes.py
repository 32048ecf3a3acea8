"""Volumes loaded through Slicer's DICOM browser carry only ``DICOM.instanceUIDs`` (DICOMScalarVolumePlugin.py
v5.8.1 line 510) and sit under the DICOM patient and study items (DICOMPlugin.py v5.8.1 line 197). The logics
read calibration (ultrasound regions too, which Slicer's loader ignores), age and sex from the file the
instance UID names, and put their results under that study. Checked on slicer-core with a volume built the way
Slicer's loader builds it: stored pixels, spacing 1 mm, no attribute of this project.
"""

from __future__ import annotations

import json

import numpy as np
import pydicom
import pytest
from PIL import Image

import slicer
from RheumImagingLib.imageio import adopt_dicom_source, is_calibrated, spacing_mm
from SjogrenUSLib.logic import SjogrenUSLogic


def _as_dicom_browser_loads(scene, path):
    """Slicer's scalar-volume loader, reduced to what this project can see of it."""
    from vtk.util import numpy_support
    import vtk

    ds = pydicom.dcmread(path)
    pixels = ds.pixel_array.astype(np.float32)
    image = vtk.vtkImageData()
    image.SetDimensions(pixels.shape[1], pixels.shape[0], 1)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(pixels.ravel(), deep=True))
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", f"1: {ds.Modality}")
    volume.SetAndObserveImageData(image)
    volume.SetIJKToRASDirections(-1, 0, 0, 0, -1, 0, 0, 0, 1)
    volume.SetAttribute("DICOM.instanceUIDs", ds.SOPInstanceUID)
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    patient = sh.CreateSubjectItem(sh.GetSceneItemID(), f"{ds.PatientName} ({ds.PatientID})")
    study = sh.CreateStudyItem(patient, "Study 1")
    sh.CreateItem(study, volume)
    return volume, ds, {ds.SOPInstanceUID: str(path)}.get, study


@pytest.fixture(scope="module")
def us_study(tmp_path_factory):
    from RheumImagingDemo.us_phantom import generate_cohort

    return generate_cohort(tmp_path_factory.mktemp("us"), 1, seed=3, legacy_png=True).parent / "images"


def test_calibration_age_sex_come_from_the_instance_file(scene, us_study):
    path = us_study / "PSS0001_mucosa.dcm"
    volume, ds, file_for_instance, _ = _as_dicom_browser_loads(scene, path)
    assert not is_calibrated(volume)
    assert adopt_dicom_source(volume, file_for_instance)
    truth = json.loads(path.with_suffix(".json").read_text())["spacing_mm"]
    assert spacing_mm(volume) == pytest.approx(tuple(truth))  # (row, col) from the ultrasound region, in mm
    assert volume.GetAttribute("RheumImaging.Calibration") == "US region"
    assert volume.GetAttribute("RheumImaging.PatientAge") == str(int(ds.PatientAge[:3]))
    assert volume.GetAttribute("RheumImaging.PatientSex") == ds.PatientSex
    assert not adopt_dicom_source(volume, file_for_instance)  # once only


def test_unknown_instance_is_a_clear_error(scene, us_study):
    from RheumImagingLib.errors import InputError

    volume, *_ = _as_dicom_browser_loads(scene, us_study / "PSS0001_mucosa.dcm")
    with pytest.raises(InputError, match="not in the DICOM database"):
        adopt_dicom_source(volume, lambda uid: "")


def test_results_go_under_the_dicom_study_in_mm(scene, us_study):
    path = us_study / "PSS0001_mucosa.dcm"
    volume, ds, file_for_instance, study = _as_dicom_browser_loads(scene, path)
    labels = np.asarray(Image.open(path.with_name("PSS0001_mucosa_labels.png")))

    class LabelsFromPhantom:  # a stand-in for the trained network: the phantom's own label map
        def predict(self, pixels):
            return np.where(labels == 4, 3, labels)

        def provenance(self):
            return {"bundle": "phantom labels (test)"}

    logic = SjogrenUSLogic(scene, segmenter=LabelsFromPhantom(), file_for_instance=file_for_instance)
    table = logic.process_patient({"mucosa": volume}, ds.PatientID)
    cells = logic.results(table)["mucosa"]
    assert cells["thickness_mm"] and "uncalibrated" not in cells["status"].lower()
    truth = json.loads(path.with_suffix(".json").read_text())["thickness_mm"]
    assert float(cells["thickness_mm"]) == pytest.approx(truth, abs=0.15)
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    for node in (volume, table, logic.segmentation_node(volume), logic.line_node(volume)):
        assert sh.GetItemParent(sh.GetItemByDataNode(node)) == study, node.GetName()
    assert not sh.GetItemChildWithName(sh.GetSceneItemID(), ds.PatientID)  # no second subject
