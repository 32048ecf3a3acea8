"""Gland grades (Salaffi 0-4, OMERACT 0-3, the phantom's rule) through one grading function,
echogenicity across scanner settings, mucosa score, totals and cut-offs from JSON.

Thresholds are fitted by RheumImagingDemo.us_calibration_cli on CALIBRATION_SEEDS; every accuracy figure
here is measured on other seeds (HELD_OUT_SEED_BASE and up)."""

import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from RheumImagingDemo import us_calibration_cli as calibration
from RheumImagingDemo.us_phantom import GRADING_FILE, render_gland
from RheumImagingLib.errors import InputError
from SjogrenUSLib import echogenicity, glands
from SjogrenUSLib.echogenicity import classify, override
from SjogrenUSLib.glands import grade_image
from SjogrenUSLib.scoring import (GLAND_SITES, grade_gland, grading_notes, load_system, mucosa_score,
                                  reader_criteria, totals)

HELD_OUT = calibration.HELD_OUT_SEED_BASE


def test_shipped_thresholds_are_what_calibration_gives_on_calibration_seeds():
    assert calibration.calibrate_echogenicity() == pytest.approx(echogenicity.MIN_SCORE_DB, abs=0.01)
    omeract = load_system("omeract_0_3")
    mild = next(c["min"] for r in omeract["rules"] for c in r.get("all", []) if c.get("measure") == "inhomogeneity")
    assert calibration.calibrate_inhomogeneity() == pytest.approx(mild, abs=0.001)
    assert calibration.calibrate_focus_ratio() == glands.FOCUS_RATIO


def test_gland_grades_agree_with_phantom_truth_on_held_out_seeds():
    """Linear weighted kappa >= 0.8 on 20 held-out glands from truth masks (foci merged into the
    parenchyma, so only the pixels reveal them, as with a segmenter)."""
    system = load_system(GRADING_FILE)
    truth, found = [], []
    for k in range(20):
        px, lab, t = calibration.gland_sample(HELD_OUT + k // 5, k)
        truth.append(t["grade"])
        found.append(grade_image(px, lab, t["spacing_mm"], system).grade)
    assert cohen_kappa_score(truth, found, weights="linear") >= 0.8


def test_salaffi_definitions_coded_as_written():
    s = load_system("salaffi_0_4")
    assert s["name"] == "salaffi_0_4" and "Salaffi" in s["citation"] and set(s["definitions"]) == set("01234")
    assert reader_criteria(s) == ["echogenic_bands", "calcifications"]
    assert grade_gland([], s) == 0
    assert grade_gland([1.0], s) == 1  # small hypoechoic areas
    assert grade_gland([1.0, 1.5], s) == 2  # multiple < 2 mm, bands not entered (counted present)
    assert grade_gland([1.0, 1.5], s, {"echogenic_bands": False}) == 1  # without echogenic bands
    assert grade_gland([2.5, 3.0], s) == 3 and grade_gland([2.5, 1.0], s) == 2  # multiple 2-6 mm
    assert grade_gland([7.0, 6.5], s) == 4 and grade_gland([7.0, 3.0], s) == 3  # multiple > 6 mm
    assert grade_gland([1.0, 1.2], s, {"calcifications": True}) == 4  # multiple calcifications with bands
    assert grade_gland([1.0, 1.2], s, {"calcifications": True, "echogenic_bands": False}) == 1
    assert grading_notes(s) == ["echogenic_bands not entered by a reader (counted as present)",
                                "calcifications not entered by a reader (counted as absent)"]
    assert grading_notes(s, {"echogenic_bands": True, "calcifications": False}) == []
    assert load_system("hocevar_0_4")["name"] == "salaffi_0_4"  # saved scenes keep working


def test_omeract_definitions_coded_as_written():
    s = load_system("omeract_0_3")
    assert grade_gland([], s, {"inhomogeneity": 0.10}) == 0
    assert grade_gland([], s, {"inhomogeneity": 0.20}) == 1  # mild inhomogeneity, no hypoechoic area
    assert grade_gland([1.0], s, {"inhomogeneity": 0.10, "diffuse_coverage": 0.1}) == 2  # focal areas
    assert grade_gland([3.0] * 9, s, {"diffuse_coverage": 0.9}) == 3  # occupying the entire gland
    assert grade_gland([], s, {"fibrous_gland": True}) == 3


def test_one_large_focal_area_is_omeract_2_and_diffuse_foci_are_3():
    s = load_system("omeract_0_3")
    px, lab, t = render_gland(HELD_OUT, "parotid_left", 0)
    sp = t["spacing_mm"][0]
    y, x = np.mgrid[:px.shape[0], :px.shape[1]]
    rows, cols = np.nonzero(lab == 3)
    cy, cx = rows.mean(), cols.mean()
    disc = (y - cy) ** 2 + (x - cx) ** 2 < (4.0 / sp) ** 2  # one 8 mm area
    dark = np.where(disc, px // 5, px).astype(np.uint8)
    r = grade_image(dark, lab, t["spacing_mm"], s)
    assert r.diameters_mm and max(r.diameters_mm) > 6 and r.diffuse_coverage < 0.8 and r.grade == 2
    px, lab, t = render_gland(HELD_OUT + 1, "parotid_right", 3)  # nine to twelve foci spread over the gland
    r = grade_image(px, np.where(lab == 4, 3, lab), t["spacing_mm"], s)
    assert r.diffuse_coverage >= 0.8 and r.grade == 3


def test_inhomogeneity_index_separates_known_inhomogeneity_on_held_out_seeds():
    """The OMERACT grade 0/1 boundary: normal vs mildly inhomogeneous parenchyma, cut fitted on seeds
    1000-1023, right in >= 90% of 12 held-out glands at fixed settings and >= 85% of 24 with varied gain,
    dynamic range, frequency, speckle reduction and spacing (measured 22/24 on these seeds; the earlier
    index, spread over the pixel spread at 0.6 mm, got 16/24: speckle reduction read as inhomogeneity)."""
    mild = next(c["min"] for r in load_system("omeract_0_3")["rules"] for c in r.get("all", [])
                if c.get("measure") == "inhomogeneity")
    for acquisition, n, floor in (("fixed", 12, 0.9), ("varied", 24, 0.85)):
        right = []
        for k in range(n):
            px, lab, t = calibration.inhomogeneity_sample(HELD_OUT + k, k, acquisition)
            index = glands.inhomogeneity_index(px, lab, t["spacing_mm"])
            right.append((index >= mild) == (t["inhomogeneity"] >= calibration.MILD_INHOMOGENEITY))
        assert np.mean(right) >= floor, acquisition


def test_inhomogeneity_speckle_floor_follows_speckle_reduction():
    """Speckle smoothed further (speckle reduction) has a higher floor, and pure speckle reads ~0 either way;
    a coarser texture of half the speckle's spread reads > 0.2 with or without the smoothing."""
    from scipy import ndimage

    rng = np.random.default_rng(0)
    labels = np.zeros((200, 200), np.uint8)
    labels[1:-1, 20:-1] = 3
    keep = labels == 3
    speckle = ndimage.gaussian_filter(rng.standard_normal((200, 200)), 1.0)
    smoother = ndimage.gaussian_filter(speckle, 1.0)
    texture = ndimage.gaussian_filter(rng.standard_normal((200, 200)), 4.0)
    assert glands.speckle_floor(smoother, keep, (2.0, 2.0)) > 1.5 * glands.speckle_floor(speckle, keep, (2.0, 2.0))
    for img in (speckle, smoother):
        img = img / img.std()
        assert glands.inhomogeneity_index(100 + 20 * img, labels, (0.1, 0.1)) < 0.05
        textured = img + 0.5 * texture / texture.std()
        assert glands.inhomogeneity_index(100 + 20 * textured, labels, (0.1, 0.1)) > 0.2


def test_echogenicity_across_scanner_settings_on_held_out_seeds():
    """Varied gain (+-10 dB), dynamic range (40-70 dB), frequency, speckle reduction and spacing: the
    relative measure classifies >= 85% of 24 held-out images right; the old grey-level rule could not."""
    right = []
    for k in range(24):
        px, lab, t = calibration.mucosa_sample(HELD_OUT + k, k)
        right.append(classify(px, lab).cls == t["echogenicity"])
    assert np.mean(right) >= 0.85
    r = override(classify(px, lab), "homogeneous")
    assert r.cls == "homogeneous" and r.overridden and r.spread_db is not None
    with pytest.raises(ValueError):
        override(r, "bright")


def test_log_compression_from_the_file_matches_the_speckle_estimate():
    px, lab, t = calibration.mucosa_sample(HELD_OUT + 99, 0, acquisition="fixed")
    from_file = classify(px, lab, dynamic_range_db=45.0)
    from_speckle = classify(px, lab)
    assert from_file.db_source == "file" and from_speckle.db_source == "speckle"
    assert from_speckle.db_per_grey == pytest.approx(45.0 / 255.0, rel=0.15)


def test_mucosa_score_totals_and_classification_from_json(tmp_path):
    s = load_system()
    assert s["name"] == "salaffi_0_4"
    assert mucosa_score(0.38, "heterogeneous_hyperechoic", s) == 2
    assert mucosa_score(0.39, "heterogeneous_hyperechoic", s) == 1
    assert mucosa_score(None, "homogeneous", s) == 0
    grades = dict(zip(GLAND_SITES, (2, 1, 2, 1)))
    out = totals(grades, 1, s)
    assert out == {"gland_score": 6, "modified_score": 7, "gland_positive": 1, "modified_positive": 1}
    assert totals(grades, 0, s)["modified_positive"] == 0
    assert totals({**grades, "parotid_left": None}, 1, s)["gland_score"] is None
    custom = dict(s, cutoffs={"gland_total": 7, "modified_total": 9}, mucosa={"thickness_cutoff_mm": 0.5})
    p = tmp_path / "custom.json"
    p.write_text(json.dumps(custom))
    c = load_system(p)
    assert totals(grades, 1, c)["gland_positive"] == 0 and mucosa_score(0.45, "homogeneous", c) == 1


def test_uncalibrated_gland_image_has_no_grade():
    px, lab, _ = render_gland(3, "parotid_left", 2)
    r = grade_image(px, lab, None, load_system())
    assert r.status == "unavailable" and r.grade is None and "uncalibrated" in r.reason


def test_unknown_or_broken_system_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no such scoring system"):
        load_system("nonsense")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_system(bad)
    undeclared = tmp_path / "undeclared.json"
    undeclared.write_text(json.dumps({"name": "x", "rules": [{"grade": 1, "all": [{"reader": "bands"}]}]}))
    with pytest.raises(InputError, match="does not declare"):
        load_system(undeclared)
