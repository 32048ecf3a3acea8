"""From Slicer to a training cohort, end to end (issue 12, section 3): DICOM phantoms loaded into a slicer-core
scene, their truth put on Slicer nodes, one annotation corrected by hand, "Add to training cohort" for each
image into a new cohort folder; that folder then trains with ``train`` and scores with ``score`` on the
command line. Training runs a one-epoch copy of each bundle (a ``tiny`` override config in a copied source
bundle folder, as a user's own override config would), so these tests check the route, not the accuracy."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from RheumImagingLib.anatomy import BONES, SITES, US_SEGMENTS, annotation_column, image_column
from RheumImagingLib.annotations import ImageGeometry, read_curves, read_masks
from RheumImagingLib.imageio import load_volume, read_image
from RheumImagingLib.training_cohort import add_hand, add_ultrasound
from conftest import REPO
from test_training_cohort import _curve_nodes, _paint, _ras, _slicer_segmentation

pytestmark = pytest.mark.slow  # each trains networks (one epoch)

RA_TINY = {"metacarpal_contour": {"stage1#max_epochs": 1, "stage2#max_epochs": 1},
           "ra_bone_texture": {"patch_size": 32, "max_epochs": 1, "val_interval": 1, "batch_size": 8}}
US_TINY = {"max_epochs": 1, "val_interval": 1, "patch_size": [64, 64], "samples_per_image": 2, "batch_size": 4}


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _tiny_source(root, bundles: dict) -> None:
    """Copies of the extension's bundles (no weights), each with a ``configs/tiny.json`` override config."""
    for name, overrides in bundles.items():
        ignore = shutil.ignore_patterns("*.pt", "*.onnx", "__pycache__")
        shutil.copytree(REPO / "monai_bundle" / name, root / name, ignore=ignore)
        demo = json.loads((root / name / "configs" / "demo.json").read_text())
        (root / name / "configs" / "tiny.json").write_text(json.dumps({**demo, **overrides}))


def test_a_hand_cohort_built_in_slicer_trains_and_scores(tmp_path, scene):
    from RheumImagingDemo.hand_phantom import generate_cohort
    from RheumTextureLib.rheumtexture_cli import main

    phantoms = generate_cohort(tmp_path / "phantoms", 10, 53, legacy_png=False)
    cohort = tmp_path / "cohort"
    moved = None
    for truth_row in _rows(phantoms):
        dicom = phantoms.parent / truth_row["image"]
        volume = load_volume(scene, dicom)
        truth = read_curves(phantoms.parent / truth_row["annotation"], ImageGeometry.of_image(read_image(dicom)))
        nodes = _curve_nodes(scene, volume, truth)
        if moved is None:  # the user drags one control point of the first patient's MC3
            moved = truth["MC3"][5] + np.array([2.0, -3.0])
            nodes["MC3"].SetNthControlPointPosition(5, *_ras(volume, moved))
            edited = truth_row["patient_id"]
        add_hand(cohort, volume_node=volume, curves=nodes, patient_id=truth_row["patient_id"],
                 label=int(truth_row["label"]), age=truth_row["age"], sex=truth_row["sex"])
    rows = _rows(cohort / "cohort.csv")
    assert [r["patient_id"] for r in rows] == [r["patient_id"] for r in _rows(phantoms)]
    first = rows[0]
    written = read_curves(cohort / first["annotation"], ImageGeometry.of_image(read_image(cohort / first["image"])))
    assert first["patient_id"] == edited and np.allclose(written["MC3"][5], moved, atol=1e-3)
    assert sorted(written) == sorted(BONES)

    source = tmp_path / "source"
    _tiny_source(source, RA_TINY)
    bundles = tmp_path / "bundles"
    assert main(["train", "--cohort", str(cohort / "cohort.csv"), "--out", str(bundles), "--config", "tiny",
                 "--source", str(source)]) == 0
    assert (bundles / "metacarpal_contour" / "models" / "model.pt").is_file()
    assert (bundles / "ra_bone_texture" / "models" / "model.pt").is_file()
    assert main(["score", str(cohort), "--bundle", str(bundles), "--out", str(tmp_path / "scores.csv"),
                 "--runtime", "torch", "--no-progress"]) == 0
    scores = _rows(tmp_path / "scores.csv")
    assert sorted(r["patient_id"] for r in scores) == sorted(r["patient_id"] for r in rows)
    assert all(r["qc"] for r in scores)
    assert {r["patient_id"]: r["label"] for r in scores} == {r["patient_id"]: r["label"] for r in rows}


def test_an_ultrasound_cohort_built_in_slicer_trains_and_scores(tmp_path, scene):
    from RheumImagingDemo.us_phantom import generate_cohort
    from SjogrenUSLib.sjogrenus_cli import main

    phantoms = generate_cohort(tmp_path / "phantoms", 2, 57, shape=(128, 128), mucosa_spacing_mm=0.05,
                               gland_spacing_mm=0.2, legacy_png=False)
    cohort = tmp_path / "cohort"
    painted = None
    for truth_row in _rows(phantoms):
        for site in SITES:
            image = phantoms.parent / truth_row[image_column(site)]
            volume = load_volume(scene, image)
            segmentation = _slicer_segmentation(scene, phantoms.parent / truth_row[annotation_column(site)])
            if painted is None and site == "parotid_left":  # the user paints a few pixels of parenchyma
                truth = read_masks(phantoms.parent / truth_row[annotation_column(site)],
                                   ImageGeometry.of_image(read_image(image)), US_SEGMENTS)
                painted = truth["parenchyma"].copy()
                painted[100:104, 10:20] = True
                painted[truth["focus"]] = False
                assert (painted & ~truth["parenchyma"]).sum() > 0
                segment = segmentation.GetSegmentation().GetSegmentIdBySegmentName("parenchyma")
                _paint(segmentation, segment, volume, painted)
                edited = (truth_row["patient_id"], site)
            add_ultrasound(cohort, volume_node=volume, segmentation_node=segmentation,
                           patient_id=truth_row["patient_id"], site=site, label=int(truth_row["label"]))
    rows = _rows(cohort / "cohort.csv")
    assert [r["patient_id"] for r in rows] == [r["patient_id"] for r in _rows(phantoms)]
    row = next(r for r in rows if r["patient_id"] == edited[0])
    image = cohort / row[image_column(edited[1])]
    written = read_masks(cohort / row[annotation_column(edited[1])], ImageGeometry.of_image(read_image(image)),
                         US_SEGMENTS)
    assert np.array_equal(written["parenchyma"], painted)

    source = tmp_path / "source"
    _tiny_source(source, {"sjogren_us_segmentation": US_TINY})
    bundle = tmp_path / "bundle"
    assert main(["train", "--cohort", str(cohort / "cohort.csv"), "--out", str(bundle), "--config", "tiny",
                 "--bundle", str(source / "sjogren_us_segmentation")]) == 0
    assert (bundle / "models" / "model.pt").is_file()
    assert main(["score", str(cohort), "--bundle", str(bundle), "--out", str(tmp_path / "scores.csv"),
                 "--runtime", "torch"]) == 0
    scores = _rows(tmp_path / "scores.csv")
    assert sorted(r["patient_id"] for r in scores) == sorted(r["patient_id"] for r in rows)
    assert all(r["qc"] for r in scores)
