"""One results model, tables as views: the module logic and the command line render the same rows
from the same typed results (no re-parsing of rounded table text)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from RheumImagingLib.anatomy import BONES
from RheumImagingLib.results import qc_warning
from RheumImagingLib.stats.flow import qc_text

SPACING = 0.09501  # 4 rows of epithelium = 0.38004 mm, just above the 0.38 mm cut-off (shown as 0.3800)


class FlatMucosaSegmenter:
    """Stands in for the network: a flat epithelium 4 rows thick over submucosa."""

    def predict(self, pixels):
        labels = np.zeros(np.shape(pixels), np.uint8)
        labels[20:24] = 1
        labels[24:] = 2
        return labels

    def provenance(self):
        return {"bundle": "flat mucosa (test)"}


def test_module_and_command_line_give_identical_rows_for_a_0_38004_mm_mucosa(scene, tmp_path):
    from RheumImagingDemo.dicom_write import write_dicom
    from RheumImagingDemo.us_phantom import _us_regions, render_mucosa
    from SjogrenUSLib.logic import SjogrenUSLogic
    from SjogrenUSLib.score_cli import score_studies
    from SjogrenUSLib.scoring import load_system

    pixels, _, _ = render_mucosa(7, 0.38, "homogeneous", SPACING, (96, 96))
    path = tmp_path / "P1_mucosa.dcm"
    write_dicom(path, pixels, modality="US", entropy=["results-model"], patient_id="P1",
                elements={"SequenceOfUltrasoundRegions": _us_regions(pixels.shape, SPACING)})
    system = load_system()
    out = tmp_path / "scores.csv"
    score_studies([("P1", 1, {"mucosa": path})], out, FlatMucosaSegmenter(), system, progress=False)
    with open(out, newline="") as f:
        (cli_row,) = list(csv.DictReader(f))

    logic = SjogrenUSLogic(scene, FlatMucosaSegmenter())
    table = logic.process_patient({"mucosa": logic.load_ultrasound(path)}, "P1", label=1)
    module_row = {k: str(v) for k, v in logic.patient_row(table).items()}

    assert module_row == cli_row
    # 4 x 0.09501 = 0.38004 mm > 0.38: the thickness point is not given, although both views show 0.38
    echo_point = int(cli_row["echogenicity"] == "heterogeneous_hyperechoic")
    assert cli_row["thickness_mm"] == "0.38" and cli_row["mucosa_score"] == str(echo_point)
    assert logic.results(table)["mucosa"]["thickness_mm"] == "0.3800"
    assert logic.results(table)["mucosa_score"]["grade"] == str(echo_point)
    # a correction changes the model; the re-rendered table and row still agree with each other
    logic.override_echogenicity(table, "heterogeneous_hyperechoic")
    assert logic.patient_row(table)["mucosa_score"] == 1 == int(logic.results(table)["mucosa_score"]["grade"])


def test_qc_column_and_warning():
    assert qc_text([]) == "ok" and qc_text(["spacing unknown", "not a hand"]) == "spacing unknown;not a hand"
    assert qc_warning(["ok", "ok", ""]) is None
    assert qc_warning(["ok", "spacing unknown;flipped", "spacing unknown"]) == (
        "Check before use: spacing unknown; flipped")


class FixedHandScorer:
    """Stands in for the networks: fixed contours and fold probabilities just above the 0.43 threshold
    (0.4300004 shows as 0.430000: a hand score re-read from the 6-decimal text would not be above it)."""

    P = 0.4300004

    def analyse(self, pixels, spacing_mm=None, metadata=None, orientation=None):
        import types

        rows, cols = np.shape(pixels)
        t = np.linspace(0, 2 * np.pi, 40, endpoint=False)
        contours = {b: {"control_points": np.c_[cols * (0.3 + 0.2 * k) + 5 * np.cos(t), rows / 2 + 30 * np.sin(t)]}
                    for k, b in enumerate(("MC2", "MC3", "MC4"))}
        scores = {b: {"fold_probabilities": [self.P] * 5, "score": self.P} for b in contours}
        orientation = types.SimpleNamespace(describe=lambda: "right hand (test), fingers up")
        return {"contours": contours, "scores": scores, "orientation": orientation, "qc": [],
                "bone_qc": {b: [] for b in BONES}}

    def score(self, pixels, control_points, spacing_mm=None):
        """A bone moved to the right scores higher (its mean column over the image width)."""
        return {b: {"fold_probabilities": [float(np.mean(cp[:, 0]) / np.shape(pixels)[1])] * 5,
                    "score": float(np.mean(cp[:, 0]) / np.shape(pixels)[1])} for b, cp in control_points.items()}

    def distal_third_frame(self, control_points, spacing_mm=None):
        centre = np.mean(control_points, axis=0)
        return {"centre": centre, "axis": np.array([0.0, -10.0]), "across": np.array([4.0, 0.0]),
                "width": 1.0, "length": 1.0}

    def provenance(self):
        return {"bundle": "fixed (test)"}

    def training_images(self):
        return None


def test_module_and_command_line_give_identical_hand_rows(scene, tmp_path):
    import json

    from RheumImagingDemo.dicom_write import write_dicom
    from RheumTextureLib import results
    from RheumTextureLib.logic import RheumTextureLogic
    from RheumTextureLib.score_cli import score_images

    path = tmp_path / "RA9.dcm"
    write_dicom(path, np.full((120, 100), 900, np.uint16), modality="DX", entropy=["hand-rows"], patient_id="RA9",
                elements={"ImagerPixelSpacing": [0.2, 0.2]})
    score_images([path], tmp_path / "out" / "scores.csv", scorer=FixedHandScorer(), progress=False)
    with open(tmp_path / "out" / "scores_images.csv", newline="") as f:
        (cli_image,) = list(csv.DictReader(f))
    with open(tmp_path / "out" / "scores_bones.csv", newline="") as f:
        cli_bones = list(csv.DictReader(f))

    logic = RheumTextureLogic(scene, scorer=FixedHandScorer())
    volume = logic.load_radiograph(path)
    logic.process(volume)
    hand = logic.hand_result(volume)
    ident = {k: cli_image[k] for k in ("patient_id", "label", "age", "sex")}
    as_text = lambda row: {k: str(v) for k, v in row.items()}  # noqa: E731 (CSV cells are text)
    assert as_text(results.image_row(hand, ident, str(path), cli_image["in_training"])) == cli_image
    assert [as_text(r) for r in results.bone_rows(hand, ident, str(path))] == cli_bones
    assert cli_image["above_threshold"] == "1" and logic.scores(volume)["hand"]["above_threshold"]
    assert logic.table_node(volume).GetCellText(3, 7) == "yes"  # the table view says the same
    # what a work_cli process sends back (JSON) writes the same results as the in-process run
    prepared = logic.prepare(volume)
    from RheumTextureLib.logic import compute_hand

    again = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "again")
    again.Copy(volume)
    logic.apply_hand(again, json.loads(json.dumps(compute_hand(FixedHandScorer(), *prepared))))
    assert logic.scores(again) == logic.scores(volume)


def test_add_to_training_cohort_passes_the_nodes_as_they_are(scene, tmp_path):
    from RheumImagingLib.errors import InputError
    from RheumTextureLib.logic import RheumTextureLogic
    from RheumTextureLib.panel import add_to_cohort

    calls = []

    class Cohort:  # Contract E's add_hand, recording its call
        @staticmethod
        def add_hand(cohort_dir, **kwargs):
            calls.append((cohort_dir, kwargs))
            return {"patient_id": kwargs["patient_id"]}

    logic = RheumTextureLogic(scene, scorer=FixedHandScorer())
    from RheumImagingLib.imageio import volume_from_array

    volume = volume_from_array(scene, np.full((120, 100), 900, np.float32), (0.2, 0.2), "RA9", "test")
    with pytest.raises(ValueError, match="no contour of MC2, MC3, MC4"):
        add_to_cohort(logic, volume, tmp_path, patient_id="RA9", label="unknown", cohort_module=Cohort)
    logic.process(volume)
    with pytest.raises(InputError, match="choose the training cohort folder"):
        add_to_cohort(logic, volume, "", patient_id="RA9", label="1 (case)", cohort_module=Cohort)
    add_to_cohort(logic, volume, tmp_path, patient_id="RA9", label="1 (case)", age=0.0, sex="F", cohort_module=Cohort)
    folder, kwargs = calls[0]
    assert folder == tmp_path and kwargs["label"] == 1 and kwargs["age"] is None and kwargs["sex"] == "F"
    assert kwargs["curves"]["MC3"] is logic.curve_node(volume, "MC3") and kwargs["volume_node"] is volume


def test_add_to_training_cohort_writes_the_segmentation_as_it_is(scene, tmp_path):
    """The SjogrenUS panel's button through Contract E's add_ultrasound: the row names the DICOM behind the
    volume and a segmentation file that reads back to the segments in the scene."""
    from RheumImagingDemo.dicom_write import write_dicom
    from RheumImagingDemo.us_phantom import _us_regions, render_mucosa
    from RheumImagingLib.annotations import ImageGeometry, read_masks
    from RheumImagingLib.errors import InputError
    from SjogrenUSLib.logic import SjogrenUSLogic
    from SjogrenUSLib.panel import add_to_cohort

    pixels, _, _ = render_mucosa(8, 0.38, "homogeneous", SPACING, (96, 96))
    path = tmp_path / "P7_mucosa.dcm"
    write_dicom(path, pixels, modality="US", entropy=["cohort-button"], patient_id="P7",
                elements={"SequenceOfUltrasoundRegions": _us_regions(pixels.shape, SPACING)})
    logic = SjogrenUSLogic(scene, FlatMucosaSegmenter())
    volume = logic.load_ultrasound(path)
    with pytest.raises(ValueError, match="no image has a segmentation yet"):
        add_to_cohort(logic, {"mucosa": volume}, tmp_path / "cohort", patient_id="P7", label="1 (case)")
    logic.process_patient({"mucosa": volume}, "P7")
    with pytest.raises(InputError, match="choose the training cohort folder"):
        add_to_cohort(logic, {"mucosa": volume}, ".", patient_id="P7", label="1 (case)")
    (row,) = add_to_cohort(logic, {"mucosa": volume}, tmp_path / "cohort", patient_id="P7", label="1 (case)")
    assert row["patient_id"] == "P7" and str(row["label"]) == "1"
    assert (tmp_path / "cohort" / row["mucosa_image"]).resolve() == path.resolve()
    masks = read_masks(tmp_path / "cohort" / row["mucosa_annotation"], ImageGeometry.of_volume(volume),
                       ("epithelium", "submucosa"))
    expected = FlatMucosaSegmenter().predict(pixels)
    assert np.array_equal(masks["epithelium"], expected == 1) and np.array_equal(masks["submucosa"], expected == 2)


def test_rheumtexture_work_task_round_trip(scene, tmp_path, monkeypatch):
    """The panel's task for RheumTextureLib.work_cli (written, read back, computed, JSON result) applies as
    the in-process run: for the whole hand and for one edited bone."""
    import json

    from RheumImagingLib.background import read_result, read_task, write_task
    from RheumImagingLib.geometry import control_points_ras, set_control_points_ras
    from RheumImagingLib.imageio import volume_from_array
    from RheumTextureLib import pipeline, work_cli
    from RheumTextureLib.logic import RheumTextureLogic
    from RheumTextureLib.panel import bone_task, hand_task

    monkeypatch.setattr(pipeline, "HandScorer", lambda root=None: FixedHandScorer())
    logic = RheumTextureLogic(scene, scorer=FixedHandScorer())
    volume = volume_from_array(scene, np.full((120, 100), 900, np.float32), (0.2, 0.2), "RA9", "test")

    def run(task, arrays):
        folder = write_task(task, arrays)
        assert work_cli.main([str(folder)]) == 0
        return read_result(folder)[0]

    logic.apply_hand(volume, run(*hand_task(logic.prepare(volume), tmp_path)))
    inline = volume_from_array(scene, np.full((120, 100), 900, np.float32), (0.2, 0.2), "inline", "test")
    logic.process(inline)
    assert logic.scores(volume) == logic.scores(inline)
    assert read_task(write_task(*hand_task(logic.prepare(volume), tmp_path)))[0]["bundle_root"] == str(tmp_path)

    curve = logic.curve_node(volume, "MC3")
    set_control_points_ras(curve, control_points_ras(curve) + [1.0, 0.0, 0.0])
    computed = run(*bone_task(logic.prepare(volume), None, "MC3", logic.edited_points(volume, "MC3")))
    before = logic.scores(volume)
    logic.apply_bone(volume, json.loads(json.dumps(computed)))
    after = logic.scores(volume)
    assert logic.hand_result(volume).edited == ["MC3"]
    assert after["MC3"]["score"] == pytest.approx(np.mean(logic.edited_points(volume, "MC3")[:, 0]) / 100)
    assert after["MC2"] == before["MC2"] and after["hand"]["score"] != before["hand"]["score"]


def test_the_results_model_is_not_provenance(scene):
    from RheumImagingLib.imageio import volume_from_array
    from RheumImagingLib.scene import provenance
    from RheumTextureLib.logic import RheumTextureLogic

    logic = RheumTextureLogic(scene, scorer=FixedHandScorer())
    volume = volume_from_array(scene, np.full((120, 100), 900, np.float32), (0.2, 0.2), "RA9", "test")
    table = logic.process(volume)
    assert "Results" not in provenance(table) and provenance(table)["bundle"] == "fixed (test)"
    logic.rescore_bone(volume, "MC2")
    assert not any("Results" in key for key in provenance(logic.roi_node(volume, "MC2")))
