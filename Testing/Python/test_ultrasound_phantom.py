"""Ultrasound phantoms: cohort files and columns, calibration through the image I/O, determinism,
label masks on the image (epithelium bright over a dark submucosa, thickness within one pixel,
dark foci in the parenchyma), grades recoverable by the grading rule, and the pSS/control shape."""

from __future__ import annotations

import csv
import json

import numpy as np
import pydicom
import pytest
from PIL import Image
from scipy import ndimage

from RheumImagingDemo.us_phantom import (ACQUISITION_RANGES, COHORT_COLUMNS, GLANDS, GRADING, SITES, THICKNESS_CUTOFF_MM,
                                  draw_patient, render_gland, render_mucosa)
from RheumImagingLib.anatomy import US_SEGMENTS
from RheumImagingLib.annotations import ImageGeometry, read_masks
from RheumImagingLib.imageio import read_image
from SjogrenUSLib.scoring import grade_gland
from SjogrenUSLib.sjogrenus_cli import main

SEED = 7
N = 4


@pytest.fixture(scope="session")
def us_cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("us_phantoms") / "cohort"
    assert main(["phantom", str(out), "--patients", str(N), "--seed", str(SEED), "--legacy-png"]) == 0
    with open(out / "cohort.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        return out, reader.fieldnames, list(reader)


def _read(path):
    """Pixels and mm spacing through the project's image I/O when it exists."""
    try:
        from RheumImagingLib.imageio import read_image
    except ImportError:  # image I/O not merged yet: the US region calibration read here
        ds = pydicom.dcmread(path)
        region = ds.SequenceOfUltrasoundRegions[0]
        assert region.PhysicalUnitsXDirection == 3 and region.PhysicalUnitsYDirection == 3
        spacing = (float(region.PhysicalDeltaY) * 10.0, float(region.PhysicalDeltaX) * 10.0)
        return ds.pixel_array.astype(np.float32), spacing, "US region"
    img = read_image(path)
    return img.pixels, img.spacing_mm, img.calibration


def test_cohort_csv_columns_and_consistency(us_cohort):
    out, fields, rows = us_cohort
    assert tuple(fields) == COHORT_COLUMNS
    assert [r["label"] for r in rows] == ["1", "0", "1", "0"]
    assert len({r["patient_id"] for r in rows}) == N
    for r in rows:
        grades = [int(g) for g in r["gland_grades_true"].split(";")]
        assert len(grades) == 4 and all(0 <= g <= 4 for g in grades)
        assert int(r["gland_score_true"]) == sum(grades)
        thickness = float(r["thickness_mm_true"])
        assert r["echogenicity_true"] in ("homogeneous", "heterogeneous_hyperechoic")
        expected = int(thickness <= THICKNESS_CUTOFF_MM) + int(r["echogenicity_true"] == "heterogeneous_hyperechoic")
        assert int(r["mucosa_score_true"]) == expected
        for k, site in enumerate(SITES):
            rel = r[f"{site}_image"]
            assert rel == f"images/{r['patient_id']}_{site}.dcm"
            assert r[f"{site}_annotation"] == f"images/{r['patient_id']}_{site}.seg.nrrd"
            truth = json.loads((out / rel).with_suffix(".json").read_text())
            assert truth["site"] == site and truth["patient_id"] == r["patient_id"]
            if site == "mucosa":
                assert truth["thickness_mm"] == thickness and truth["echogenicity"] == r["echogenicity_true"]
            else:
                assert truth["grade"] == grades[k - 1]


def test_files_load_with_us_region_calibration(us_cohort):
    out, _, rows = us_cohort
    for site in ("mucosa", "parotid_left"):
        path = out / rows[0][f"{site}_image"]
        pixels, spacing, calibration = _read(path)
        truth = json.loads(path.with_suffix(".json").read_text())
        assert calibration == "US region"
        assert spacing == pytest.approx(truth["spacing_mm"], rel=1e-9)
        png = np.asarray(Image.open(path.with_suffix(".png")))
        assert np.array_equal(pixels, png.astype(np.float32))
        # the annotation, read as a user's Slicer segmentation on the DICOM, is the label map, segment by segment
        labels = np.asarray(Image.open(path.parent / f"{path.stem}_labels.png"))
        masks = read_masks(out / rows[0][f"{site}_annotation"], ImageGeometry.of_image(read_image(path)), US_SEGMENTS)
        assert set(masks) == ({"epithelium", "submucosa"} if site == "mucosa" else {"parenchyma", "focus"})
        for value, name in enumerate(US_SEGMENTS, start=1):
            if name in masks:
                assert np.array_equal(masks[name], labels == value), name
        ds = pydicom.dcmread(path)
        assert ds.Modality == "US" and ds.PhotometricInterpretation == "MONOCHROME2" and ds.BitsAllocated == 8
        region = ds.SequenceOfUltrasoundRegions[0]
        assert (region.RegionSpatialFormat, region.RegionDataType) == (1, 1)
        assert (region.RegionLocationMaxX1, region.RegionLocationMaxY1) == (ds.Columns - 1, ds.Rows - 1)
    spacing_mucosa = _read(out / rows[0]["mucosa_image"])[1]
    assert THICKNESS_CUTOFF_MM / spacing_mucosa[0] >= 10  # the cut-off spans at least 10 pixels


def test_deterministic_and_extendable(us_cohort, tmp_path):
    out, _, rows = us_cohort
    assert main(["phantom", str(tmp_path / "again"), "--patients", "2", "--seed", str(SEED), "--legacy-png"]) == 0
    for r in rows[:2]:
        for site in SITES:
            stem = r[f"{site}_image"][:-4]
            for suffix in (".dcm", ".seg.nrrd", ".png", "_labels.png", ".json"):
                a = (out / (stem + suffix)).read_bytes()
                assert a == (tmp_path / "again" / (stem + suffix)).read_bytes(), stem + suffix
    a = render_gland(3, "parotid_left", 2)
    b = render_gland(3, "parotid_left", 2)
    c = render_gland(4, "parotid_left", 2)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_refuses_to_overwrite(us_cohort, capsys):
    out, _, _ = us_cohort
    before = (out / "cohort.csv").read_bytes()
    assert main(["phantom", str(out), "--patients", "1", "--seed", "99"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "cohort.csv").read_bytes() == before
    assert main(["phantom", str(out / "x"), "--patients", "0"]) == 2


@pytest.mark.parametrize("echogenicity", ["homogeneous", "heterogeneous_hyperechoic"])
@pytest.mark.parametrize("thickness", [0.22, 0.38, 0.55])
def test_mucosa_mask_on_image(thickness, echogenicity):
    pixels, labels, truth = render_mucosa(int(thickness * 100), thickness, echogenicity)
    sp = truth["spacing_mm"][0]
    epithelium, submucosa = labels == 1, labels == 2
    assert pixels[epithelium].mean() > pixels[submucosa].mean() + 30
    gel = np.arange(labels.shape[0])[:, None] < np.argmax(epithelium, axis=0)[None, :]
    assert pixels[gel].mean() < 30  # anechoic coupling gel above the epithelium
    # Upper and lower boundary per column; the layer is nearly flat, so vertical ~ perpendicular.
    measured = epithelium.sum(axis=0) * sp
    assert np.median(measured) == pytest.approx(thickness, abs=sp)
    assert np.all(np.abs(measured - thickness) <= 1.05 * sp + 0.01 * thickness)


def test_heterogeneous_epithelium_brighter_and_patchier():
    contrast, spread = {}, {}
    for e in ("homogeneous", "heterogeneous_hyperechoic"):
        c, s = [], []
        for seed in range(4):
            pixels, labels, _ = render_mucosa(seed, 0.45, e)
            epi = pixels[labels == 1].astype(float)
            c.append(epi.mean() - pixels[labels == 2].mean())
            # patchiness beyond speckle: spread of 5x5 block means inside the layer
            smooth = ndimage.uniform_filter(pixels.astype(float), 5)[ndimage.binary_erosion(labels == 1, iterations=2)]
            s.append(smooth.std())
        contrast[e], spread[e] = np.mean(c), np.mean(s)
    assert contrast["heterogeneous_hyperechoic"] > contrast["homogeneous"] + 10
    assert spread["heterogeneous_hyperechoic"] > 1.3 * spread["homogeneous"]


@pytest.mark.parametrize("grade", range(5))
def test_gland_foci_on_image(grade):
    for gland in ("parotid_right", "submandibular_left"):
        pixels, labels, truth = render_gland(10 * grade + len(gland), gland, grade)
        sp = truth["spacing_mm"][0]
        assert truth["grade"] == grade == grade_gland([f["diameter_mm"] for f in truth["foci"]], GRADING)
        parenchyma, focus = labels == 3, labels == 4
        surround = ndimage.binary_dilation(parenchyma | focus, iterations=25) & ~ndimage.binary_dilation(
            parenchyma | focus, iterations=5)
        surround[: int(truth["fascia_mm"] / sp) + 3] = False  # compare with the muscle, not skin and fat
        assert pixels[parenchyma].mean() > pixels[surround].mean() + 10  # parenchyma hyperechoic vs muscle
        components, n = ndimage.label(focus)
        assert n == len(truth["foci"])
        for f in truth["foci"]:
            r, c = (int(round(v)) for v in f["centre_px"])
            blob = components == components[r, c]
            assert components[r, c] > 0
            assert 2 * np.sqrt(blob.sum() / np.pi) * sp == pytest.approx(f["diameter_mm"], abs=1.5 * sp)
            assert pixels[blob].mean() < pixels[parenchyma].mean() - 20
        if grade == 0:
            assert n == 0


def test_grading_rule_matches_json():
    assert grade_gland([], GRADING) == 0
    assert grade_gland([1.2, 1.9], GRADING) == 1
    assert grade_gland([2.1] + [1.0] * 8, GRADING) == 2
    assert grade_gland([3.0] * 6, GRADING) == 3
    assert grade_gland([6.5], GRADING) == 4
    assert [rule["grade"] for rule in GRADING["rules"]] == [4, 3, 2, 1, 0]


def test_pss_and_control_distributions():
    draws = {label: [draw_patient(np.random.default_rng([1, i, label]), label) for i in range(400)] for label in (0, 1)}
    median = {k: np.median([p["thickness_mm"] for p in v]) for k, v in draws.items()}
    hetero = {k: np.mean([p["echogenicity"] == "heterogeneous_hyperechoic" for p in v]) for k, v in draws.items()}
    scores = {k: np.array([sum(p["grades"]) for p in v]) for k, v in draws.items()}
    control_grades = np.concatenate([p["grades"] for p in draws[0]])
    assert median[1] == pytest.approx(0.32, abs=0.02) and median[0] == pytest.approx(0.45, abs=0.02)
    assert hetero[1] == pytest.approx(0.60, abs=0.07) and hetero[0] == pytest.approx(0.11, abs=0.05)
    assert np.mean(control_grades <= 1) > 0.8
    assert np.mean(scores[1] >= 6) > 0.7 and np.mean(scores[0] < 6) > 0.85
    assert set(GLANDS) == {"parotid_left", "parotid_right", "submandibular_left", "submandibular_right"}


def test_varied_acquisition_changes_the_scanner_not_the_truth(tmp_path):
    """--acquisition varied: settings recorded per image within their ranges, drawn independently of
    the patient (same truth: grades, foci sizes, thickness, as the fixed cohort of the same seed)."""
    fixed, varied = tmp_path / "fixed", tmp_path / "varied"
    assert main(["phantom", str(fixed), "--patients", "2", "--seed", "3"]) == 0
    assert main(["phantom", str(varied), "--patients", "2", "--seed", "3", "--acquisition", "varied"]) == 0
    assert (fixed / "cohort.csv").read_text().split("\n")[1:] == (varied / "cohort.csv").read_text().split("\n")[1:]
    settings = []
    for name in ("PSS0001_mucosa", "PSS0001_parotid_left", "HC0001_submandibular_right"):
        f, v = (json.loads((d / "images" / f"{name}.json").read_text()) for d in (fixed, varied))
        assert "acquisition" not in f
        acq = v["acquisition"]
        for key, (lo, hi) in ACQUISITION_RANGES.items():
            assert lo <= acq[key] <= hi
        assert v["spacing_mm"][0] == pytest.approx(f["spacing_mm"][0] * acq["spacing_factor"])
        assert [x["diameter_mm"] for x in v.get("foci", [])] == [x["diameter_mm"] for x in f.get("foci", [])]
        assert v.get("grade") == f.get("grade") and v.get("thickness_mm") == f.get("thickness_mm")
        settings.append(acq["dynamic_range_db"])
    assert len(set(settings)) == 3


def test_no_legacy_png_writes_no_png(tmp_path):
    assert main(["phantom", str(tmp_path / "c"), "--patients", "1", "--no-legacy-png"]) == 0
    names = sorted(p.name for p in (tmp_path / "c" / "images").iterdir())
    assert not [n for n in names if n.endswith(".png")]
    assert names == sorted(f"PSS0001_{site}{suffix}" for site in SITES for suffix in (".dcm", ".json", ".seg.nrrd"))
