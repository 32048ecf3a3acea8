"""A user-given pixel spacing (``--pixel-spacing``, cohort ``pixel_spacing_mm``) for images without
calibration: used only for those, and every output row says which spacing its measurements used."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from PIL import Image

from RheumImagingDemo.dicom_write import write_dicom


class _RecordingScorer:
    """Stands in for the trained networks: records the spacing each radiograph is measured in."""

    def __init__(self):
        self.spacings = []

    def training_images(self):
        return None

    def analyse(self, pixels, spacing_mm, metadata, orientation=None):
        from RheumTextureLib.logic import BONES, N_FOLDS

        self.spacings.append(spacing_mm)
        as_is = type("Orientation", (), {"describe": lambda self: "as is"})()
        return {"scores": {b: {"score": 0.5, "fold_probabilities": [0.5] * N_FOLDS} for b in BONES},
                "qc": [], "bone_qc": {b: [] for b in BONES}, "orientation": as_is}


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture
def radiographs(tmp_path):
    pixels = (np.arange(40 * 32, dtype=np.uint16).reshape(40, 32) * 3)
    write_dicom(tmp_path / "calibrated.dcm", pixels, modality="CR", entropy=["c"], patient_id="A",
                elements={"ImagerPixelSpacing": [0.2, 0.2]})
    Image.fromarray((pixels // 16).astype(np.uint8)).save(tmp_path / "export.png")
    return tmp_path


def test_ra_score_uses_the_users_spacing_only_without_calibration(radiographs):
    from RheumTextureLib.score_cli import score_images

    scorer = _RecordingScorer()
    images = [radiographs / "calibrated.dcm", radiographs / "export.png"]
    score_images(images, radiographs / "a.csv", scorer=scorer, progress=False, pixel_spacing_mm=0.1)
    assert scorer.spacings == [(0.2, 0.2), (0.1, 0.1)]
    assert [r["spacing_source"] for r in _rows(radiographs / "a_images.csv")] == ["calibrated", "user-given"]
    scorer = _RecordingScorer()
    score_images(images, radiographs / "b.csv", scorer=scorer, progress=False)
    assert scorer.spacings == [(0.2, 0.2), None]  # no mm without calibration or the user's spacing
    assert [r["spacing_source"] for r in _rows(radiographs / "b_images.csv")] == ["calibrated", "none"]


def test_ra_cohort_pixel_spacing_column_overrides_the_option(radiographs):
    from RheumTextureLib.score_cli import score_images

    cohort = radiographs / "cohort.csv"
    cohort.write_text("patient_id,label,image,annotation,pixel_spacing_mm\n"
                      "A,1,calibrated.dcm,,0.5\nB,0,export.png,,0.07\n")
    scorer = _RecordingScorer()
    score_images([radiographs / "calibrated.dcm", radiographs / "export.png"], radiographs / "c.csv", scorer=scorer,
                 cohort=cohort, progress=False, pixel_spacing_mm=0.1)
    assert scorer.spacings == [(0.2, 0.2), (0.07, 0.07)]  # the calibration wins over any user value


def test_ra_score_rejects_a_bad_pixel_spacing_option(capsys):
    from RheumTextureLib.rheumtexture_cli import main

    with pytest.raises(SystemExit):
        main(["score", "x.dcm", "--out", "s.csv", "--pixel-spacing", "-1"])
    assert "positive number of mm per pixel" in capsys.readouterr().err


def test_us_thickness_in_mm_from_the_users_spacing(tmp_path):
    """A mucosa screenshot (PNG, no calibration) of known epithelium thickness: measured in mm only
    with the user's spacing, and the row says so."""
    from RheumImagingDemo.us_phantom import MUCOSA_SPACING_MM, render_mucosa
    from SjogrenUSLib.score_cli import score_studies, studies_from_inputs
    from SjogrenUSLib.scoring import DEFAULT_SYSTEM, load_system

    pixels, labels, truth = render_mucosa(3, 0.45, "homogeneous")
    for name in ("one.png", "two.png"):
        Image.fromarray(pixels).save(tmp_path / name)
    segmenter = type("TruthSegmenter", (), {"predict": lambda self, image: labels})()  # the exact layers
    (tmp_path / "cohort.csv").write_text(
        "patient_id,label,mucosa_image,mucosa_annotation,parotid_left_annotation,pixel_spacing_mm\n"
        f"P1,1,one.png,,,{MUCOSA_SPACING_MM}\nP2,0,two.png,,,\n")
    studies = studies_from_inputs([str(tmp_path / "cohort.csv")])
    score_studies(studies, tmp_path / "scores.csv", segmenter, load_system(DEFAULT_SYSTEM), progress=False)
    given, unknown = _rows(tmp_path / "scores.csv")
    assert given["spacing_source"] == "user-given" and unknown["spacing_source"] == "none"
    assert float(given["thickness_mm"]) == pytest.approx(truth["thickness_mm"], abs=2 * MUCOSA_SPACING_MM)
    assert unknown["thickness_mm"] == ""  # no mm without a spacing


def test_user_spacing_on_a_volume_is_recorded_and_calibration_is_kept(scene, radiographs):
    from RheumImagingLib.annotations import set_user_spacing, spacing_source_of
    from RheumImagingLib.imageio import load_volume, spacing_mm

    export = load_volume(scene, radiographs / "export.png")
    assert spacing_source_of(export) == "none" and spacing_mm(export) is None
    assert set_user_spacing(export, 0.1)
    assert spacing_mm(export) == (0.1, 0.1) and spacing_source_of(export) == "user-given"
    assert export.GetAttribute("RheumImaging.Calibration") == "user-given: 0.1 mm per pixel"  # provenance
    dicom = load_volume(scene, radiographs / "calibrated.dcm")
    assert not set_user_spacing(dicom, 0.1)
    assert spacing_mm(dicom) == pytest.approx((0.2, 0.2)) and spacing_source_of(dicom) == "calibrated"
