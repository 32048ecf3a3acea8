"""Gland grades from hypoechoic foci, echogenicity classes, mucosa score, totals and cut-offs from JSON."""

import json

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from RheumImagingLib.errors import InputError
from SjogrenUSLib.echogenicity import classify, override
from SjogrenUSLib.glands import grade_image
from SjogrenUSLib.phantom import ECHOGENICITY, GLANDS, grade_from_foci, render_gland, render_mucosa
from SjogrenUSLib.scoring import GLAND_SITES, grade_gland, load_system, mucosa_score, totals


def test_gland_grades_agree_with_phantom_truth_linear_kappa():
    """Weighted kappa (linear weights) >= 0.8 on 30 glands from truth label maps (label 4 foci
    merged into the parenchyma so only the pixels reveal them, as with a segmenter)."""
    system = load_system("hocevar_0_4")
    truth, found = [], []
    for i in range(30):
        px, lab, t = render_gland(500 + i, GLANDS[i % 4], i % 5)
        lab = np.where(lab == 4, 3, lab)
        r = grade_image(px, lab, t["spacing_mm"], system)
        truth.append(t["grade"])
        found.append(r.grade)
    assert cohen_kappa_score(truth, found, weights="linear") >= 0.8


def test_published_system_recovers_the_phantom_rule():
    rng = np.random.default_rng(0)
    for _ in range(200):
        d = rng.uniform(0.3, 9.0, size=rng.integers(0, 12))
        assert grade_gland(d, load_system("hocevar_0_4")) == grade_from_foci(d)


def test_omeract_alternative_is_0_to_3():
    s = load_system("omeract_0_3")
    assert grade_gland([], s) == 0 and grade_gland([1.0], s) == 1
    assert grade_gland([2.5], s) == 2 and grade_gland([7.0], s) == 3 and grade_gland([3.0] * 6, s) == 3


def test_uncalibrated_gland_image_has_no_grade():
    px, lab, _ = render_gland(3, "parotid_left", 2)
    r = grade_image(px, lab, None, load_system())
    assert r.status == "unavailable" and r.grade is None and "uncalibrated" in r.reason


def test_echogenicity_classes_and_override():
    for i in range(10):
        e = ECHOGENICITY[i % 2]
        px, lab, _ = render_mucosa(700 + i, 0.2 + 0.08 * i, e)
        assert classify(px, lab).cls == e
    r = override(classify(px, lab), "homogeneous")
    assert r.cls == "homogeneous" and r.overridden and r.spread is not None
    with pytest.raises(ValueError):
        override(r, "bright")


def test_mucosa_score_totals_and_classification_from_json(tmp_path):
    s = load_system()
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


def test_unknown_or_broken_system_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no such scoring system"):
        load_system("nonsense")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        load_system(bad)
