"""Shared fixtures. Heavy ones (phantom cohorts, trained test weights) are built once
per session and reused, so `make test` stays within minutes on two CPU cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory):
    """Networks exported to ONNX during the tests are cached in the session's temp folder, not ~/.cache."""
    path = tmp_path_factory.mktemp("onnx_cache")
    previous = os.environ.get("RHEUM_IMAGING_CACHE")
    os.environ["RHEUM_IMAGING_CACHE"] = str(path)
    yield path
    if previous is None:
        os.environ.pop("RHEUM_IMAGING_CACHE", None)
    else:
        os.environ["RHEUM_IMAGING_CACHE"] = previous


@pytest.fixture
def scene():
    """A fresh slicer-core MRML scene with the module logics Slicer registers."""
    from RheumImagingLib.scene import new_scene

    return new_scene()


@pytest.fixture(scope="session")
def us_segmentation_trained(tmp_path_factory):
    """The ultrasound segmentation bundle trained once on a tiny phantom cohort (3 training patients, 10 epochs
    of 64-pixel crops, validated once at the end; 4.7 s on two idle cores): a ready-to-use bundle folder with
    models/model.pt, datalist.json and models/training.json. The epithelium is a band of 7-27 pixels in one
    image of five, so crops are centred on it 4 times as often as on the submucosa (background 2, parenchyma 2)
    and its pixels weigh 3 times in the loss; without this the fixture never learnt it (held-out Dice 0)."""
    from SjogrenUSLib.segmentation import BUNDLE_DIR, train_segmentation
    from SjogrenUSLib.sjogrenus_cli import main

    root = tmp_path_factory.mktemp("us_segmentation")
    assert main(["phantom", str(root / "phantoms"), "--patients", "4", "--seed", "11", "--no-legacy-png"]) == 0
    return train_segmentation(BUNDLE_DIR, root / "phantoms" / "cohort.csv", root / "bundle", config="demo",
                              val_fraction=0.25, overrides={
                                  "max_epochs": 10, "val_interval": 10, "samples_per_image": 4, "batch_size": 16,
                                  "learning_rate": 0.005, "loss#weight": "$torch.tensor([1.0, 3.0, 1.0, 1.0])",
                                  # SpatialPadd, RandCropByLabelClassesd: 64-pixel crops; validation and inference
                                  # keep the bundle's 128-pixel window (at 64 the parenchyma Dice fell to 0.75)
                                  "train#random_transforms#0#spatial_size": [64, 64],
                                  "train#random_transforms#1#spatial_size": [64, 64],
                                  "train#random_transforms#1#ratios": [2, 4, 1, 2]})


@pytest.fixture(scope="session")
def texture_datalist(tmp_path_factory):
    """A tiny phantom cohort (10 patients) as a ra_bone_texture datalist with 5 patient-grouped folds."""
    from RheumTextureLib.datalist import build_datalist
    from RheumTextureLib.rheumtexture_cli import main

    root = tmp_path_factory.mktemp("texture_data")
    assert main(["phantom", str(root / "phantoms"), "--patients", "10", "--seed", "21", "--legacy-png"]) == 0
    return build_datalist(root / "phantoms" / "cohort.csv", root / "datalist.json")


@pytest.fixture(scope="session")
def texture_bundle_trained(tmp_path_factory, texture_datalist):
    """The ra_bone_texture bundle trained once on the 5 folds (tiny 32-px patches, 1 epoch; seconds):
    a ready-to-use bundle folder with models/model.pt (fold 0) and models/model_fold{1..4}.pt."""
    from RheumTextureLib.texture import BUNDLE_DIR, train_folds

    return train_folds(BUNDLE_DIR, texture_datalist, tmp_path_factory.mktemp("texture") / "bundle", config="demo",
                       overrides={"patch_size": 32, "max_epochs": 1, "val_interval": 1, "batch_size": 8})


@pytest.fixture(scope="session")
def contour_bundle_trained(tmp_path_factory):
    """The metacarpal_contour bundle trained once on 6 phantoms (demo sizes, few epochs; ~35 s) through the real
    path (DICOM + Slicer markups, no PNG written), a seventh held out for the quality control's limits: a
    ready-to-use bundle folder with models/model.pt (localiser), models/curvegcn.pt and datalist.json."""
    from RheumImagingDemo.hand_phantom import generate_cohort
    from RheumTextureLib.contour import BUNDLE_DIR, train_contour_bundle

    root = tmp_path_factory.mktemp("contour")
    cohort = generate_cohort(root / "phantoms", 7, 31, legacy_png=False)
    return train_contour_bundle(BUNDLE_DIR, cohort, root / "bundle", config="demo",
                                overrides={"stage1#max_epochs": 50, "stage2#max_epochs": 40})


@pytest.fixture(scope="session")
def trained_bundles(tmp_path_factory, contour_bundle_trained, texture_bundle_trained):
    """One folder holding both trained bundles, as `rheumtexture train` writes it."""
    root = tmp_path_factory.mktemp("bundles")
    (root / "metacarpal_contour").symlink_to(contour_bundle_trained, target_is_directory=True)
    (root / "ra_bone_texture").symlink_to(texture_bundle_trained, target_is_directory=True)
    return root
