"""Ultrasound quality control (SjogrenUSLib.quality): the plausibility model is fitted on the training labels of
one set of phantom seeds and checked on phantoms of other seeds (MARGIN and FLOOR were calibrated on seeds 1 and
3, none of the seeds here); images the network was not made for are flagged."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from RheumImagingLib.annotations import SPACING_NONE


def _cohort(root: Path, name: str, patients: int, seed: int) -> Path:
    from SjogrenUSLib.sjogrenus_cli import main

    assert main(["phantom", str(root / name), "--patients", str(patients), "--seed", str(seed),
                 "--no-legacy-png"]) == 0
    return root / name / "cohort.csv"


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """Truth label maps of 6 phantom patients (30 images, seed 37) as a datalist, and their cohort."""
    from SjogrenUSLib.segmentation import build_datalist

    root = tmp_path_factory.mktemp("us_quality")
    cohort = _cohort(root, "held_out", 6, 37)
    datalist = build_datalist(cohort, root / "held_out.json", val_fraction=1.0)
    return {"cohort": cohort, "datalist": datalist, "items": json.loads(datalist.read_text())["validation"]}


def _spacing(item):
    return item["spacing_mm"] if item["spacing_source"] != SPACING_NONE else None


def test_training_stores_the_plausibility_model_in_the_bundle(us_segmentation_trained):
    from SjogrenUSLib import quality
    from SjogrenUSLib.segmentation import USSegmenter

    model = json.loads((us_segmentation_trained / "models" / "plausibility.json").read_text())
    datalist = json.loads((us_segmentation_trained / "datalist.json").read_text())
    n_mucosa = sum(d["site"] == "mucosa" for d in datalist["training"])
    assert model["n_images"] == {"mucosa": n_mucosa, "gland": len(datalist["training"]) - n_mucosa}
    continuity = model["ranges"]["mucosa"]["epithelium_continuity"]
    assert continuity["training_min"] == continuity["training_max"] == 1.0  # phantom layers span the width
    assert USSegmenter(us_segmentation_trained).plausibility == model == quality.load(us_segmentation_trained)


def test_held_out_phantom_truth_is_at_most_5_percent_flagged(us_segmentation_trained, held_out):
    """Fitted on the fixture's training labels (seed 11, 3 patients), checked on seed 37."""
    from SjogrenUSLib import quality

    model = quality.load(us_segmentation_trained)
    flagged = [(d["site"], quality.check(np.load(held_out["datalist"].parent / d["label"]), d["site"], model,
                                         _spacing(d))) for d in held_out["items"]]
    flagged = [f for f in flagged if f[1]]
    assert len(flagged) <= 0.05 * len(held_out["items"]), flagged


def test_broken_layers_and_missing_gland_are_named(us_segmentation_trained, held_out):
    from SjogrenUSLib import quality

    model = quality.load(us_segmentation_trained)
    mucosa = next(d for d in held_out["items"] if d["site"] == "mucosa")
    labels = np.load(held_out["datalist"].parent / mucosa["label"])
    broken = labels.copy()
    broken[:, : labels.shape[1] // 2][broken[:, : labels.shape[1] // 2] == 1] = 0  # epithelium on half the width
    assert quality.check(broken, "mucosa", model) == [
        "segmentation implausible: epithelium_continuity 0.5 (training 1-1)"]
    assert quality.check(np.where(labels == 1, 0, labels), "mucosa", model) == ["layer not found (epithelium)"]
    gland = next(d for d in held_out["items"] if d["site"] != "mucosa")
    empty = np.load(held_out["datalist"].parent / gland["label"]) * 0
    assert quality.check(empty, gland["site"], model) == ["gland not found"]
    swapped = np.where(labels == 1, 2, np.where(labels == 2, 1, labels))  # submucosa above the epithelium
    assert "epithelium_above_submucosa 0" in quality.check(swapped, "mucosa", model)[0]


def test_flagged_predictions_are_the_wrong_ones(us_segmentation_trained, held_out):
    """The seconds-long fixture network segments some held-out glands badly (the demo config's network has 0 of
    30 held-out phantom images flagged, bundle docs/README.md): on average the ones qc flags have a lower Dice
    than every one it passes."""
    from SjogrenUSLib import quality
    from SjogrenUSLib.segmentation import USSegmenter

    segmenter = USSegmenter(us_segmentation_trained)
    dice = {True: [], False: []}
    for item in (d for d in held_out["items"] if d["site"] != "mucosa"):
        predicted = segmenter.predict(np.load(held_out["datalist"].parent / item["image"])) == 3
        truth = np.load(held_out["datalist"].parent / item["label"]) >= 3
        flagged = bool(quality.check(predicted * 3, item["site"], segmenter.plausibility, _spacing(item)))
        dice[flagged].append(2 * (predicted & truth).sum() / (predicted.sum() + truth.sum()))
    assert dice[True] and dice[False]
    assert np.mean(dice[True]) < min(dice[False]), dice  # measured: 0.83 (0.70-0.98) against 0.95-0.98


def test_score_flags_a_radiograph_phantom_and_a_cr_file(us_segmentation_trained, tmp_path):
    """`sjogrenus score` given a radiograph phantom (as PNG: no modality to go by, its segmentation must tell) and
    a pydicom-data CR file: both rows have qc and are flagged, and analyze's screening leaves them out."""
    import pandas as pd
    from PIL import Image

    from RheumImagingDemo.hand_phantom import render_hand
    from RheumImagingLib.imageio import read_image
    from RheumImagingLib.stats import flow
    from SjogrenUSLib import quality
    from SjogrenUSLib.segmentation import USSegmenter
    from SjogrenUSLib.sjogrenus_cli import main

    data_store = pytest.importorskip("data_store")
    cr = Path(data_store.__file__).parent / "data" / "RG3_UNCR.dcm"  # a hand radiograph, Modality CR
    pixels, _ = render_hand(5, 1, size=(256, 208))
    radiograph = tmp_path / "radiograph.png"  # a PNG says nothing of its modality: the segmentation must tell
    Image.fromarray((pixels / pixels.max() * 255).astype(np.uint8)).save(radiograph)
    segmenter = USSegmenter(us_segmentation_trained)
    for site in ("mucosa", "parotid_left"):
        assert quality.check(segmenter.predict(read_image(radiograph).pixels), site, segmenter.plausibility), site
    out = tmp_path / "scores.csv"
    assert main(["score", str(radiograph), str(cr), "--bundle", str(us_segmentation_trained), "--out", str(out)]) == 0
    with open(out) as f:
        rows = {r["patient_id"]: r for r in csv.DictReader(f)}
    assert rows["radiograph"]["qc"] != "ok" and "modality" not in rows["radiograph"]["qc"]
    assert "not an ultrasound image (DICOM modality CR)" in rows["RG3_UNCR"]["qc"]
    kept, flow_table = flow.screen(pd.read_csv(out, dtype=str, keep_default_na=False), out)
    assert kept.empty and flow_table["qc_flagged"]["rows"] == 2
