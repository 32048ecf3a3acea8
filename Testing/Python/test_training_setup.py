"""The one training set-up the three trainers share: a new copy of the bundle, never over a user's files, with
what it was trained with in its own configs and in models/training.json."""

import hashlib
import json
import shutil
import time

import pytest

from RheumImagingLib.errors import InputError
from RheumImagingLib.training_setup import new_training_copy, record_training
from conftest import REPO

CONTOUR = REPO / "monai_bundle" / "metacarpal_contour"


def test_refuses_a_non_empty_folder_and_leaves_it_as_it_was(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not empty"):
        new_training_copy(CONTOUR, out, config="demo")
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    with pytest.raises(InputError, match="configs/train.json"):
        new_training_copy(tmp_path, tmp_path / "new")


def test_copy_carries_the_trained_values_in_its_configs_and_no_weights(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(CONTOUR, source)
    (source / "models").mkdir(exist_ok=True)
    (source / "models" / "model.pt").write_bytes(b"old weights")
    (source / "eval").mkdir()
    out = new_training_copy(source, tmp_path / "out", config="demo", overrides={"stage2#max_epochs": 3, "seed": 7})
    demo = json.loads((CONTOUR / "configs" / "demo.json").read_text())
    inference = json.loads((out / "configs" / "inference.json").read_text())
    train = json.loads((out / "configs" / "train.json").read_text())
    assert inference["localiser_size"] == demo["localiser_size"] and inference["crop_size"] == demo["crop_size"]
    assert train["stage1"]["max_epochs"] == demo["stage1#max_epochs"]
    assert train["stage2"]["max_epochs"] == 3  # an override wins over the override config
    assert train["seed"] == 7  # a key no config has is kept in train.json
    assert list((out / "models").iterdir()) == [] and not (out / "eval").exists()
    assert json.loads((CONTOUR / "configs" / "inference.json").read_text())["crop_size"] != demo["crop_size"]


def test_record_names_what_it_was_trained_with_and_the_weights(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "model.pt").write_bytes(b"weights")
    path = record_training(tmp_path, time.perf_counter(), config="demo", cohort=tmp_path / "cohort.csv")
    record = json.loads(path.read_text())
    assert record["config"] == "demo" and record["cohort"] == str(tmp_path / "cohort.csv")
    assert record["weights_sha256"] == {"model.pt": hashlib.sha256(b"weights").hexdigest()}
