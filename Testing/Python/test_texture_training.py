"""`rheumtexture train` around the texture folds: ImageNet start, out-of-fold scores, the training list
that `rheumtexture score` turns into the `in_training` column."""

import csv
import json
import logging
import os
import shutil

import numpy as np
import pytest
import torch

from RheumImagingLib.bundle import Bundle
from conftest import REPO
from test_deepten_trunk import torchvision_resnet18_state

BUNDLE = REPO / "monai_bundle" / "ra_bone_texture"


def test_train_config_starts_the_trunk_from_the_pretrained_file(tmp_path):
    state = torchvision_resnet18_state(seed=7)
    torch.save(state, tmp_path / "resnet18-imagenet.pth")
    bundle = Bundle(BUNDLE, ["train", "demo"], {"pretrained_trunk": str(tmp_path / "resnet18-imagenet.pth"),
                                                "ckpt_dir": str(tmp_path / "models")})
    bundle.run(("initialize",))
    trunk = bundle.get("network_def").trunk
    assert torch.equal(trunk.layer2[0].downsample[0].weight, state["layer2.0.downsample.0.weight"])
    assert torch.equal(trunk.conv1.weight, state["conv1.weight"].sum(1, keepdim=True))


def test_train_refuses_a_missing_trunk_file_before_training(tmp_path, capsys):
    from RheumTextureLib.rheumtexture_cli import main

    assert main(["train", "--cohort", str(tmp_path / "cohort.csv"), "--out", str(tmp_path / "out"),
                 "--pretrained-trunk", str(tmp_path / "nope.pth")]) == 2
    assert "nope.pth: pretrained trunk file not found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_full_config_without_imagenet_weights_says_so(tmp_path, caplog):
    from RheumImagingLib.errors import InputError
    from RheumTextureLib.train_cli import train_bundles

    (tmp_path / "cohort.csv").write_text("patient_id,image,label\n")  # fails at once, after the notice
    with caplog.at_level(logging.INFO), pytest.raises(InputError):
        train_bundles(tmp_path / "cohort.csv", tmp_path / "out", config=None)
    assert "full config without --pretrained-trunk" in caplog.text and "random weights" in caplog.text


def _fold_of(datalist):
    return {it["patient_id"]: it["fold"] for it in json.loads(datalist.read_text())["training"]}


def test_oof_scores_come_from_the_fold_model_that_did_not_see_the_patient(texture_bundle_trained, texture_datalist,
                                                                          tmp_path):
    """Each patient's score is its fold model's mean bone probability, recomputed here from the DICOM (read_image)
    and the training outlines through TextureEnsemble (a different path from the evaluate dataset the writer uses)."""
    from RheumImagingLib.annotations import measuring_spacing
    from RheumImagingLib.imageio import read_image
    from RheumTextureLib.texture import TextureEnsemble
    from RheumTextureLib.train_cli import write_oof_scores

    cohort = texture_datalist.parent / "phantoms" / "cohort.csv"
    out = write_oof_scores(texture_bundle_trained, cohort, tmp_path / "oof_scores.csv")
    with open(out) as f:
        rows = list(csv.DictReader(f))
    with open(cohort) as f:
        truth = {r["patient_id"]: r for r in csv.DictReader(f)}
    assert [list(r) for r in rows[:1]] == [["patient_id", "label", "age", "sex", "score", "n_images", "in_training",
                                            "qc"]]
    assert {r["patient_id"] for r in rows} == set(truth)
    folds = _fold_of(texture_datalist)
    outlines = {}
    for it in json.loads(texture_datalist.read_text())["training"]:
        outlines.setdefault(it["patient_id"], {})[it["bone"]] = it["contour"]
    ensemble = TextureEnsemble(texture_bundle_trained, runtime="torch")
    other_fold_differs = 0
    for row in rows:
        pid, image = row["patient_id"], cohort.parent / truth[row["patient_id"]]["image"]
        assert (row["label"], row["age"], row["sex"]) == (truth[pid]["label"], truth[pid]["age"], truth[pid]["sex"])
        assert (row["in_training"], row["qc"], row["n_images"]) == ("yes", "ok", "1")
        loaded = read_image(image)
        scores = ensemble.score(loaded.pixels, outlines[pid], measuring_spacing(loaded)[0])
        per_fold = np.mean([s["fold_probabilities"] for s in scores.values()], axis=0)
        assert float(row["score"]) == pytest.approx(per_fold[folds[pid]], abs=1e-5)
        other_fold_differs += abs(per_fold[(folds[pid] + 1) % 5] - per_fold[folds[pid]]) > 1e-6
    assert other_fold_differs > len(rows) // 2  # the fold models differ, so picking the right one matters


def test_score_marks_the_radiographs_the_bundle_was_trained_on(texture_bundle_trained, texture_datalist,
                                                               contour_bundle_trained, tmp_path):
    from RheumImagingDemo.hand_phantom import generate_cohort
    from RheumTextureLib.score_cli import score_images
    from RheumTextureLib.texture import write_training_list

    root = tmp_path / "bundles"
    root.mkdir()
    (root / "metacarpal_contour").symlink_to(contour_bundle_trained, target_is_directory=True)
    shutil.copytree(texture_bundle_trained, root / "ra_bone_texture", copy_function=os.symlink)
    training_cohort = texture_datalist.parent / "phantoms" / "cohort.csv"
    write_training_list(root / "ra_bone_texture", training_cohort)
    # a new cohort whose patient IDs repeat the training cohort's (RA0001, HC0001): new radiographs all the same
    new_cohort = generate_cohort(tmp_path / "new", 2, seed=99)
    seen = training_cohort.parent / "images" / "RA0001.dcm"
    new = sorted((new_cohort.parent / "images").glob("*.dcm"))
    out = tmp_path / "scores.csv"
    score_images([seen, *new], out, bundle=root, progress=False, runtime="torch")
    with open(out.with_name("scores_images.csv")) as f:
        flags = {r["image"]: r["in_training"] for r in csv.DictReader(f)}
    assert flags == {str(seen): "yes", **{str(p): "no" for p in new}}
    with open(out) as f:
        assert "in_training" in next(csv.reader(f))


def test_a_cohort_too_small_for_five_folds_is_refused_before_any_training(tmp_path, capsys):
    """The texture folds need 5 annotated patients per label; finding that out after the contour bundle has trained
    (minutes to hours) would waste the user's time."""
    from RheumImagingDemo.hand_phantom import generate_cohort
    from RheumTextureLib.rheumtexture_cli import main

    cohort = generate_cohort(tmp_path / "cohort", 4, 5, size=(128, 104), legacy_png=False)
    assert main(["train", "--cohort", str(cohort), "--out", str(tmp_path / "out")]) == 2
    assert "needs at least 5 annotated patients of each label" in capsys.readouterr().err
    assert not (tmp_path / "out" / "metacarpal_contour").exists()
