"""Radiograph quality control with the test session's trained bundles: the shape model training stores with limits
learnt on held-out patients, held-out and quarter-turned hands passing, and the qc in every score table. The margins
were calibrated on phantom seeds 4 and 5 (bundle README, "Quality control"); the phantoms here are other seeds.
What the shape model refuses is tested in test_shape_model.py (the session's contour model, trained on 6 images
with limits from 1 held-out image, is too rough to show it)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from RheumTextureLib.quality import CONFIDENCE, SHAPE_MODEL, ContourQuality

BONES = ("MC2", "MC3", "MC4")


@pytest.fixture(scope="module")
def scorer(trained_bundles):
    from RheumTextureLib.pipeline import HandScorer

    return HandScorer(trained_bundles)


@pytest.fixture(scope="module")
def held_out(scorer):
    """A held-out right hand (seed 64), read upright: (pixels, its contours in the trained convention)."""
    from RheumImagingDemo.hand_phantom import render_hand

    pixels = render_hand(64, 1)[0].astype(np.float32)
    found = scorer.contour(pixels)
    return pixels, {bone: c["control_points"] for bone, c in found.items()}


def test_training_learns_the_limits_on_held_out_patients_the_networks_did_not_train_on(contour_bundle_trained):
    """The shape model is fitted on the training images' contours; its limits and the localiser's come from the
    contours the trained bundle draws on the validation patients, recomputed here from the images."""
    from RheumTextureLib.contour import MetacarpalContourer

    datalist = json.loads((contour_bundle_trained / "datalist.json").read_text())
    assert datalist["validation"] and not {d["patient_id"] for d in datalist["validation"]} & {
        d["patient_id"] for d in datalist["training"]}
    stored = json.loads((contour_bundle_trained / SHAPE_MODEL).read_text())
    assert stored["settings"]["fitted_on"] == f"the network's contours on {len(datalist['training'])} training images"
    assert set(stored["models"]) == {*BONES, "layout"}
    contourer = MetacarpalContourer(contour_bundle_trained)
    quality = ContourQuality(contour_bundle_trained, contourer)
    images = [np.load(contour_bundle_trained / d["image"]) for d in datalist["validation"]]
    distances = [quality.distances({b: c["control_points"] for b, c in contourer.predict(p).items()}) for p in images]
    for name, model in stored["models"].items():
        assert model["held_out_distances"] == pytest.approx([d[name] for d in distances], rel=1e-4)
        assert model["limit"] == pytest.approx(stored["settings"]["margin"] * np.percentile(
            model["held_out_distances"], stored["settings"]["percentile"]))
    confidence = json.loads((contour_bundle_trained / CONFIDENCE).read_text())
    doubt = confidence["held_out_1_minus_confidence"]
    assert doubt == pytest.approx([1 - quality.localiser_confidence(p) for p in images], abs=1e-5)
    assert confidence["limit"] == pytest.approx(1 - confidence["margin"] * np.percentile(doubt, 95), abs=1e-5)


def test_a_held_out_hand_passes_and_a_quarter_turn_is_read_not_flagged(scorer, held_out):
    """orientation.py undoes quarter turns, so a hand turned by 90 degrees either way is the same image to the
    contour model: nothing to flag."""
    pixels, _ = held_out
    for turns in (0, 1, 3):
        result = scorer.analyse(np.ascontiguousarray(np.rot90(pixels, turns)), (0.25, 0.25), {"ImageLaterality": "R"})
        assert result["qc"] == [], turns
        assert result["bone_qc"] == {bone: [] for bone in BONES}


def test_a_bundle_without_shape_model_says_its_contours_are_unchecked(contour_bundle_trained, tmp_path, held_out):
    import shutil

    copy = shutil.copytree(contour_bundle_trained, tmp_path / "old_bundle", ignore=shutil.ignore_patterns("*.pt"))
    (copy / SHAPE_MODEL).unlink()
    assert ContourQuality(copy).reasons(held_out[1]) == ["contours not checked (the contour bundle has no shape "
                                                         "model; retrain it)"]


def test_every_score_table_carries_the_images_qc(scorer, tmp_path):
    """The PNG twin of a calibrated DICOM has no calibration: its image, bone and patient rows all say so."""
    from RheumImagingDemo.hand_phantom import generate_cohort
    from RheumTextureLib.score_cli import score_images

    cohort = generate_cohort(tmp_path / "c", 1, seed=65, legacy_png=True)
    images = tmp_path / "c" / "images"
    out = tmp_path / "s" / "scores.csv"
    score_images([images / "RA0001.png"], out, scorer=scorer, cohort=cohort, progress=False)
    expected = "spacing unknown (assumed 0.15 mm)"
    for name in ("scores.csv", "scores_images.csv", "scores_bones.csv"):
        with open(tmp_path / "s" / name) as f:
            rows = list(csv.DictReader(f))
        assert [r["qc"] for r in rows] == [expected] * len(rows), name
    assert len(rows) == 3
