"""SjogrenUS module logic on a real slicer-core scene: one phantom patient through segmentation,
measurement lines, the scores table, user corrections, save and reload; uncalibrated input; and
the command line on a real scanner's file (the ALOKA ultrasound of pydicom-data)."""

from __future__ import annotations

import csv
import os

import numpy as np
import pytest

from RheumImagingDemo.us_phantom import GLANDS, render_gland, render_mucosa
from RheumImagingLib.geometry import control_points_ras, pixel_to_ras, ras_to_pixel, set_control_points_ras
from RheumImagingLib.imageio import volume_from_array
from RheumImagingLib.scene import load_scene, patient_of, provenance, save_scene
from SjogrenUSLib.logic import SEGMENTS, SjogrenUSLogic

GRADES = (4, 2, 3, 0)  # the phantom's grades
SALAFFI = (4, 3, 3, 0)  # Salaffi grades of those phantoms' true foci (2 x >6 mm; 3 x 2-6 mm; 12 x 2-6 mm; none)


class RecordingSegmenter:
    """The trained test network, remembering what it predicted (each image is segmented once)."""

    def __init__(self, segmenter):
        self.inner, self.predictions = segmenter, []

    def predict(self, pixels):
        self.predictions.append(self.inner.predict(pixels))
        return self.predictions[-1]

    def provenance(self):
        return self.inner.provenance()


@pytest.fixture(scope="module")
def segmenter(us_segmentation_trained):
    from SjogrenUSLib.segmentation import USSegmenter

    return USSegmenter(us_segmentation_trained)


def _phantom_volumes(scene, pid="PSS0001"):
    """The five images of one phantom patient and their true label maps (foci painted as parenchyma)."""
    px, lab, truth = render_mucosa(101, 0.3, "heterogeneous_hyperechoic")
    volumes = {"mucosa": volume_from_array(scene, px, truth["spacing_mm"], f"{pid} mucosa", "US region",
                                           {"PatientID": pid, "path": f"/data/{pid}_mucosa.dcm"})}
    labels = {"mucosa": lab}
    for k, (site, grade) in enumerate(zip(GLANDS, GRADES)):
        px, lab, truth = render_gland(110 + k, site, grade)
        volumes[site] = volume_from_array(scene, px, truth["spacing_mm"], f"{pid} {site}", "US region",
                                          {"PatientID": pid, "path": f"/data/{pid}_{site}.dcm"})
        labels[site] = np.where(lab == 4, 3, lab)
    return volumes, labels


def _segment_names(seg):
    s = seg.GetSegmentation()
    return [s.GetNthSegment(i).GetName() for i in range(s.GetNumberOfSegments())]


def test_patient_workflow_corrections_and_save_reload(scene, segmenter, tmp_path):
    recorder = RecordingSegmenter(segmenter)
    logic = SjogrenUSLogic(scene, recorder)
    volumes, truth_labels = _phantom_volumes(scene)
    table = logic.process_patient(volumes, "PSS0001", label=1)

    # each image segmented once; its segmentation holds the three tissues, named, with the network's labels
    assert len(recorder.predictions) == 5
    for (site, volume), predicted in zip(volumes.items(), recorder.predictions):
        seg = logic.segmentation_node(volume)
        assert _segment_names(seg) == [name for name, _ in SEGMENTS.values()]
        assert np.array_equal(logic.labels_from_segmentation(volume), predicted)
        assert provenance(seg)["checkpoint_sha256"] == segmenter.checkpoint_sha256
        assert provenance(seg)["input"] == f"/data/PSS0001_{site}.dcm"
        assert provenance(seg)["scoring_system"] == "salaffi_0_4" and provenance(seg)["time"]
        assert patient_of(scene, seg) == "PSS0001" and logic.table_node(volume) is table
    assert patient_of(scene, table) == "PSS0001"
    info = provenance(table)
    assert info["scoring_system"] == "salaffi_0_4" and info["bundle"] == segmenter.bundle.name and info["bundle_version"]
    assert info["checkpoint_sha256"] == segmenter.checkpoint_sha256 and info["label"] == "1"

    # the user corrects the masks (here: paints the phantom's truth); the image is measured again
    for site, volume in volumes.items():
        logic.remeasure(volume, truth_labels[site])
        assert np.array_equal(logic.labels_from_segmentation(volume), truth_labels[site])
    cells = logic.results(table)
    assert [cells[s]["grade"] for s in GLANDS] == [str(g) for g in SALAFFI]
    assert cells["gland_score"]["grade"] == "10" and cells["gland_score"]["status"] == "positive (cut-off >= 6)"
    assert "echogenic_bands not entered by a reader (counted as present)" in cells["parotid_right"]["status"]
    assert abs(float(cells["mucosa"]["thickness_mm"]) - 0.3) <= 0.03  # within one pixel (0.03 mm)
    assert cells["mucosa"]["echogenicity"] == "heterogeneous_hyperechoic"
    assert cells["mucosa_score"]["grade"] == "2" and cells["modified_score"]["grade"] == "12"
    assert cells["modified_score"]["status"] == "positive (cut-off >= 7)"

    # the mucosa line: two points across the epithelium, as long as the median thickness sample
    mucosa = volumes["mucosa"]
    line = logic.line_node(mucosa)
    ends = control_points_ras(line)
    assert ends.shape == (2, 3) and patient_of(scene, line) == "PSS0001"
    assert abs(np.linalg.norm(ends[1] - ends[0]) - 0.3) <= 0.03
    mid_row = ras_to_pixel(mucosa, ends.mean(axis=0))[0][1]
    column = int(round(ras_to_pixel(mucosa, ends.mean(axis=0))[0][0]))
    assert truth_labels["mucosa"][int(round(mid_row)), column] == 1  # centred in the epithelium

    # a corrected grade changes the totals
    logic.override_grade("PSS0001", "parotid_left", 1)  # measured 4
    cells = logic.results(table)
    assert cells["parotid_left"]["grade"] == "1" and cells["parotid_left"]["status"] == "overridden by user (measured: 4)"
    assert cells["gland_score"]["grade"] == "7" and cells["modified_score"]["grade"] == "9"
    logic.override_grade(table, "submandibular_left", 0)  # measured 3: gland 4 < 6, modified 6 < 7
    cells = logic.results(table)
    assert cells["gland_score"]["status"] == "negative (cut-off >= 6)" and cells["modified_score"]["grade"] == "6"
    with pytest.raises(ValueError, match="grade must be"):
        logic.override_grade(table, "parotid_left", 5)

    # echogenicity override: the mucosa score follows
    logic.override_echogenicity(table, "homogeneous")
    cells = logic.results(table)
    assert cells["mucosa_score"]["grade"] == "1" and cells["modified_score"]["grade"] == "5"  # thin only
    assert "echogenicity overridden by user (measured: heterogeneous_hyperechoic)" in cells["mucosa"]["status"]
    logic.override_echogenicity(table, "heterogeneous_hyperechoic")
    assert logic.results(table)["mucosa_score"]["grade"] == "2"

    # the user moves the line: thickness = its length in mm, and the mucosa score follows
    col = 128.0
    set_control_points_ras(line, pixel_to_ras(mucosa, [[col, 100.0], [col, 120.0]]))  # 20 rows x 0.03 mm
    thickness = logic.update_from_line(mucosa)
    assert thickness.mean_mm == pytest.approx(20 * 0.03, abs=1e-6)
    cells = logic.results(table)
    assert float(cells["mucosa"]["thickness_mm"]) == pytest.approx(0.6, abs=1e-4)
    assert cells["mucosa_score"]["grade"] == "1"  # 0.6 mm > 0.38 cut-off; heterogeneous +1
    assert cells["modified_score"]["grade"] == "5"  # gland 4 + mucosa 1
    assert cells["mucosa"]["status"].startswith("ok: thickness from the user's line; echogenicity overridden")

    # the caliper wins: measuring the mucosa image again keeps the user's line and thickness
    logic.remeasure(mucosa)
    cells = logic.results(table)
    assert float(cells["mucosa"]["thickness_mm"]) == pytest.approx(0.6, abs=1e-4)
    assert cells["mucosa"]["status"].startswith("ok: thickness from the user's line")
    assert np.allclose(control_points_ras(line), pixel_to_ras(mucosa, [[col, 100.0], [col, 120.0]]))

    # the reader enters a criterion the software does not measure: no echogenic bands -> Salaffi 1
    assert logic.set_reader_findings(table, "parotid_right", echogenic_bands=False) == 1
    cells = logic.results(table)
    assert cells["parotid_right"]["grade"] == "1" and cells["gland_score"]["grade"] == "2"
    with pytest.raises(ValueError, match="criteria among"):
        logic.set_reader_findings(table, "parotid_right", fibrous_gland=True)
    logic.remeasure(volumes["parotid_right"])  # the entry survives a new measurement
    cells = logic.results(table)
    assert cells["parotid_right"]["grade"] == "1"

    # save and reload: table, line, segmentations, references and provenance restored
    save_scene(scene, tmp_path / "scene")
    reloaded = load_scene(tmp_path / "scene" / "scene.mrml")
    logic2 = SjogrenUSLogic(reloaded, segmenter)
    table2 = logic2.patient_table("PSS0001")
    assert logic2.results(table2) == cells
    assert provenance(table2) == provenance(table)
    mucosa2 = logic2.volume_node(table2, "mucosa")
    assert np.allclose(control_points_ras(logic2.line_node(mucosa2)), control_points_ras(line))
    assert provenance(logic2.line_node(mucosa2))["edited"] == "true"
    for site in volumes:
        volume2 = logic2.volume_node(table2, site)
        seg2 = logic2.segmentation_node(volume2)
        assert _segment_names(seg2) == [name for name, _ in SEGMENTS.values()]
        assert np.array_equal(logic2.labels_from_segmentation(volume2),
                              logic.labels_from_segmentation(volumes[site]))
        assert provenance(seg2) == provenance(logic.segmentation_node(volumes[site]))
    # corrections keep working on the reloaded scene
    logic2.override_grade("PSS0001", "parotid_right", 0)
    assert logic2.results(table2)["parotid_right"]["grade"] == "0"


def test_uncalibrated_mucosa_png_gives_unavailable_thickness(scene, segmenter, tmp_path):
    from PIL import Image

    px, _, _ = render_mucosa(102, 0.3, "homogeneous")
    path = tmp_path / "mucosa.png"
    Image.fromarray(px).save(path)
    logic = SjogrenUSLogic(scene, segmenter)
    volume = logic.load_ultrasound(path)
    table = logic.process_patient({"mucosa": volume}, "P2")
    cells = logic.results(table)
    assert cells["mucosa"]["thickness_mm"].startswith("unavailable: image is uncalibrated")
    assert cells["mucosa_score"]["grade"] == "" and cells["mucosa_score"]["status"].startswith("unavailable")
    assert cells["gland_score"]["status"].startswith("unavailable: no grade for parotid_left")
    # a drawn line on an uncalibrated image has no length in mm either
    line = logic.line_node(volume)
    set_control_points_ras(line, pixel_to_ras(volume, [[10.0, 10.0], [10.0, 30.0]]))
    thickness = logic.update_from_line(volume)
    assert thickness.status == "unavailable" and thickness.mean_mm is None
    assert logic.results(table)["mucosa"]["thickness_mm"].startswith("unavailable: image is uncalibrated")


def test_score_cli_on_real_scanner_aloka_file(us_segmentation_trained, tmp_path):
    import data_store  # the pydicom-data package

    from SjogrenUSLib.sjogrenus_cli import main

    aloka = os.path.join(os.path.dirname(data_store.__file__), "data", "gdcm-US-ALOKA-16.dcm")
    out = tmp_path / "scores.csv"
    assert main(["score", aloka, "--bundle", str(us_segmentation_trained), "--out", str(out)]) == 0
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 1 and rows[0]["patient_id"] == "gdcm-US-ALOKA-16"
    assert "skipped" not in rows[0]["notes"]


def test_bad_requests_are_clear_errors(scene, tmp_path):
    from RheumImagingLib.errors import InputError

    logic = SjogrenUSLogic(scene)
    with pytest.raises(InputError, match="no trained weights"):
        logic.load_segmenter(tmp_path)
    volume = volume_from_array(scene, np.zeros((32, 32), np.float32), (0.1, 0.1), "img", "US region")
    with pytest.raises(ValueError, match="unknown site"):
        logic.process_patient({"knee": volume}, "P")
    with pytest.raises(ValueError, match="no SjogrenUS results for patient"):
        logic.override_grade("nobody", "parotid_left", 1)
    with pytest.raises(InputError, match="no such scoring system"):
        SjogrenUSLogic(scene, system="made_up")
