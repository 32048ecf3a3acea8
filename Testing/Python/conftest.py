"""Shared fixtures. Heavy ones (phantom cohorts, trained test weights) are built once
per session and reused, so `make test` stays within minutes on two CPU cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def scene():
    """A fresh slicer-core MRML scene with the module logics Slicer registers."""
    from RheumImagingLib.scene import new_scene

    return new_scene()


@pytest.fixture(scope="session")
def us_segmentation_trained(tmp_path_factory):
    """The ultrasound segmentation bundle trained once (seconds) on a tiny phantom cohort: a
    ready-to-use bundle folder with models/model.pt, datalist.json and models/training.json."""
    import importlib.util

    from SjogrenUSLib.cli import main
    from SjogrenUSLib.segmentation import BUNDLE_DIR, train_segmentation

    if importlib.util.find_spec("SjogrenUSLib.phantom") is None:
        pytest.skip("needs the ultrasound phantom generator (SjogrenUSLib.phantom, issue 3), not in this tree yet")
    root = tmp_path_factory.mktemp("us_segmentation")
    assert main(["phantom", str(root / "phantoms"), "--patients", "4", "--seed", "11"]) == 0
    return train_segmentation(BUNDLE_DIR, root / "phantoms" / "cohort.csv", root / "bundle", config="demo",
                              val_fraction=0.25, overrides={"max_epochs": 4, "val_interval": 2, "patch_size": [64, 64],
                                                            "samples_per_image": 4, "learning_rate": 0.005})
