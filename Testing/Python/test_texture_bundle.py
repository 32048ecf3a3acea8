"""The ra_bone_texture bundle: metadata, MONAI bundle tools, ROI cut, folds, distributed training, ensemble."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from RheumImagingLib.bundle import Bundle, bundle_imports
from conftest import REPO

BUNDLE = REPO / "monai_bundle" / "ra_bone_texture"
CONFIGS = BUNDLE / "configs"


@pytest.fixture(scope="module")
def roi():
    with bundle_imports(BUNDLE):
        from scripts import roi
    return roi




def test_verify_net_in_out_and_torchscript_export_equal_eager(tmp_path):
    from monai.bundle import ckpt_export, verify_net_in_out

    meta, config = str(CONFIGS / "metadata.json"), str(CONFIGS / "inference.json")
    with bundle_imports(BUNDLE):
        verify_net_in_out(net_id="network_def", meta_file=meta, config_file=config, device="cpu",
                          bundle_root=str(BUNDLE))
        net = Bundle(BUNDLE).get("network_def").eval()
        ckpt = tmp_path / "model.pt"
        torch.save(net.state_dict(), ckpt)
        ts = tmp_path / "model.ts"
        ckpt_export(net_id="network_def", filepath=str(ts), ckpt_file=str(ckpt), meta_file=meta,
                    config_file=config, bundle_root=str(BUNDLE))
    exported = torch.jit.load(str(ts))
    x = torch.randn(2, 1, 224, 224)
    with torch.no_grad():
        assert torch.allclose(exported(x), net(x), atol=1e-5)


def _rectangle_bone(length=120.0, width=30.0, centre=(100.0, 90.0), angle=0.0, n=40):
    """A closed rectangle outline, long axis at ``angle`` (radians, image x/y), point 0 at the distal end."""
    t = np.linspace(0, 1, n, endpoint=False)
    perim = 2 * (length + width)
    s = t * perim
    local = []
    for d in s:  # start at the distal end's middle, go around
        if d < width / 2:
            local.append((length / 2, d))
        elif d < width / 2 + length:
            local.append((length / 2 - (d - width / 2), width / 2))
        elif d < 1.5 * width + length:
            local.append((-length / 2, width / 2 - (d - width / 2 - length)))
        elif d < 1.5 * width + 2 * length:
            local.append((-length / 2 + (d - 1.5 * width - length), -width / 2))
        else:
            local.append((length / 2, -width / 2 + (d - 1.5 * width - 2 * length)))
    local = np.array(local)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return local @ rot.T + np.array(centre)


def _image_with_gradient(contour_angle, shape=(200, 200), centre=(100.0, 90.0)):
    """Intensity = distance along the axis (distal bright), so patch rows must fall top to bottom."""
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]].astype(float)
    axis = np.array([np.cos(contour_angle), np.sin(contour_angle)])
    return (xx - centre[0]) * axis[0] + (yy - centre[1]) * axis[1]


def test_roi_rows_follow_the_axis_distal_at_top(roi):
    contour = _rectangle_bone(angle=0.0)
    image = _image_with_gradient(0.0)
    patch = roi.cut_distal_third(image, contour, size=16)
    # distal third spans axis positions 60 .. 20 from the centre: rows go from ~60 down to ~20
    assert patch[0].mean() == pytest.approx(60 - 40 / 32, abs=0.5)
    assert patch[-1].mean() == pytest.approx(20 + 40 / 32, abs=0.5)
    assert np.allclose(patch, patch[:, :1], atol=1e-6)  # constant across the bone
    # reversing the contour's starting point to the other end flips the patch (distal is where point 0 is)
    flipped = np.roll(contour[::-1], 20, axis=0)
    assert roi.cut_distal_third(image, flipped, size=16)[0].mean() < -50


def test_roi_is_rotation_equivariant(roi):
    rng = np.random.default_rng(0)
    base = rng.random((200, 200)).astype(np.float32)
    from scipy.ndimage import gaussian_filter, rotate

    base = gaussian_filter(base, 2)
    contour = _rectangle_bone(angle=0.0, centre=(99.5, 99.5))
    patch = roi.cut_distal_third(base, contour, size=24)
    rotated = rotate(base, 90, reshape=False, order=1)  # counter-clockwise on screen
    # a point (x, y) goes to (y, 199 - x) under that rotation
    rc = np.stack([contour[:, 1], 199 - contour[:, 0]], 1)
    patch_rot = roi.cut_distal_third(rotated, rc, size=24)
    assert np.abs(patch_rot - patch).max() < 1e-4


def test_cut_distal_third_transform_matches_function(roi):
    contour = _rectangle_bone(angle=0.3)
    image = _image_with_gradient(0.3)
    out = roi.CutDistalThirdd(keys="image", size=12)({"image": image[None], "contour": contour.tolist()})
    assert out["image"].shape == (1, 12, 12)
    assert np.allclose(out["image"][0], roi.cut_distal_third(image, contour, 12))


def test_datalist_folds_grouped_by_patient_and_stratified(tmp_path):
    from RheumTextureLib.datalist import assign_folds, build_datalist
    from RheumTextureLib.rheumtexture_cli import main

    assert main(["phantom", str(tmp_path / "ph"), "--patients", "10", "--seed", "3"]) == 0
    items = json.loads(build_datalist(tmp_path / "ph" / "cohort.csv", tmp_path / "dl.json").read_text())["training"]
    assert len(items) == 30 and {it["bone"] for it in items} == {"MC2", "MC3", "MC4"}
    by_patient = {}
    for it in items:
        by_patient.setdefault(it["patient_id"], set()).add(it["fold"])
        assert len(it["contour"]) == 40 and Path(it["image"]).is_file()
    assert all(len(f) == 1 for f in by_patient.values())
    pids = [f"P{i}" for i in range(40)]
    labels = [i % 2 for i in range(40)]
    folds = assign_folds(pids, labels, seed=1)
    for k in range(5):
        members = [labels[i] for i, p in enumerate(pids) if folds[p] == k]
        assert members.count(0) == members.count(1) == 4
    assert folds == assign_folds(pids, labels, seed=1)


def test_multi_gpu_train_with_torchrun_ends_with_identical_weights(tmp_path, texture_datalist):
    script = tmp_path / "ddp.py"
    script.write_text(f"""
import os, torch
from RheumImagingLib.bundle import Bundle
b = Bundle({str(BUNDLE)!r}, ["train", "demo", "multi_gpu_train"],
           {{"datalist": {str(texture_datalist)!r}, "ckpt_dir": {str(tmp_path)!r}, "patch_size": 32,
             "max_epochs": 1, "val_interval": 1, "batch_size": 4}})
b.run(("initialize", "run"))
net = b.get("network_def")
torch.save(net.state_dict(), os.path.join({str(tmp_path)!r}, "rank" + os.environ["RANK"] + ".pt"))
b.run(("finalize",))
""")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29517",
                    str(script)], check=True, env=env, cwd=tmp_path, capture_output=True, timeout=300)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    init = Bundle(BUNDLE, ["train", "demo"]).get("network_def").state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a if "running" not in k and "num_batches" not in k)
    assert any(not torch.equal(a[k], init[k]) for k in a if k.endswith("weight"))
    assert (tmp_path / "model.pt").is_file()  # fold 0: the model zoo's name


def _fold_probabilities_by_hand(bundle_dir, image, contour, trained_with, spacing_mm):
    """Each fold checkpoint in a freshly built DeepTEN on the hand-cut, hand-z-scored patch: sigmoid(logit)."""
    with bundle_imports(bundle_dir):
        from scripts.deepten import DeepTEN
        from scripts.roi import cut_distal_third
    patch = cut_distal_third(image, np.asarray(contour, float), trained_with["patch_size"], spacing_mm=spacing_mm,
                             patch_spacing_mm=trained_with["patch_spacing_mm"])
    patch = (patch - patch.mean()) / patch.std()
    x = torch.as_tensor(patch, dtype=torch.float32)[None, None]
    probs = []
    for fold in range(5):
        net = DeepTEN(in_channels=1, D=128, K=32).eval()
        name = "model.pt" if fold == 0 else f"model_fold{fold}.pt"
        net.load_state_dict(torch.load(Path(bundle_dir) / "models" / name, weights_only=True))
        with torch.no_grad():
            probs.append(float(torch.sigmoid(net(x))))
    return probs


def test_texture_ensemble_scores_every_bone_with_every_fold(texture_bundle_trained):
    from RheumImagingDemo.hand_phantom import render_hand
    from RheumTextureLib.texture import TextureEnsemble

    ens = TextureEnsemble(texture_bundle_trained, runtime="torch")
    assert len(ens.network.models) == 5
    img, truth = render_hand(77, 1)
    contours = {b: v["contour"] for b, v in truth["bones"].items()}
    scores = ens.score(img, contours, truth["pixel_spacing_mm"])
    assert set(scores) == {"MC2", "MC3", "MC4"}
    trained_with = json.loads((texture_bundle_trained / "configs" / "inference.json").read_text())
    assert trained_with["patch_size"] == 32  # the trained size lives in the trained bundle's own config
    for bone, s in scores.items():
        expected = _fold_probabilities_by_hand(texture_bundle_trained, img, contours[bone], trained_with,
                                               truth["pixel_spacing_mm"])
        assert s["fold_probabilities"] == pytest.approx(expected, abs=1e-5)
        assert s["score"] == pytest.approx(sum(expected) / 5, abs=1e-5)
    # one bone scored alone gives the same numbers (batching does not mix bones: eval-mode BN)
    alone = ens.score(img, {"MC3": contours["MC3"]}, truth["pixel_spacing_mm"])
    assert alone["MC3"]["score"] == pytest.approx(scores["MC3"]["score"], abs=1e-6)
    prov = ens.provenance()
    assert prov["bundle_version"] == json.loads((CONFIGS / "metadata.json").read_text())["version"]
    assert len(prov["checkpoint_sha256"]) == 5 and all(len(h) == 64 for h in prov["checkpoint_sha256"])


def test_texture_ensemble_without_checkpoints_is_a_clear_error(tmp_path):
    import shutil

    from RheumImagingLib.errors import InputError
    from RheumTextureLib.texture import TextureEnsemble

    shutil.copytree(BUNDLE, tmp_path / "b", ignore=shutil.ignore_patterns("models", "__pycache__"))
    with pytest.raises(InputError, match=r"model\.pt, model_fold1\.pt.*docs/README\.md, section 'Weights'"):
        TextureEnsemble(tmp_path / "b")


def _auroc_by_counting(scores, labels):
    """Mann-Whitney: the share of (RA, control) pairs ranked right, ties counted half."""
    pos = [s for s, y in zip(scores, labels) if y == 1]
    neg = [s for s, y in zip(scores, labels) if y == 0]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


def test_evaluate_config_reports_auroc_per_bone_and_per_hand(texture_bundle_trained, tmp_path):
    """On held-out phantoms (seed 23; the bundle trained on seed 21), the reported AUROCs are those of the
    ensemble's scores, recomputed here from TextureEnsemble on the DICOMs (read_image) and by pair counting."""
    import csv

    from RheumImagingDemo.hand_phantom import generate_cohort
    from RheumImagingLib.annotations import measuring_spacing
    from RheumImagingLib.imageio import read_image
    from RheumTextureLib.datalist import build_datalist
    from RheumTextureLib.texture import TextureEnsemble

    cohort = generate_cohort(tmp_path / "held_out", 6, seed=23)
    datalist = build_datalist(cohort, tmp_path / "held_out.json", n_folds=3)
    b = Bundle(texture_bundle_trained, ["inference", "evaluate"],
               {"datalist": str(datalist), "output_dir": str(tmp_path / "eval")})
    b.run(("run",))
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["n_bones"] == 18 and metrics["n_hands"] == 6
    outlines = {}
    for it in json.loads(datalist.read_text())["training"]:
        outlines.setdefault(it["patient_id"], {})[it["bone"]] = it["contour"]
    ens = TextureEnsemble(texture_bundle_trained, runtime="torch")
    bones, hands = {}, {}
    with open(cohort) as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        image, label = read_image(cohort.parent / row["image"]), int(row["label"])
        scores = ens.score(image.pixels, outlines[row["patient_id"]], measuring_spacing(image)[0])
        for bone, s in scores.items():
            bones.setdefault(bone, []).append((s["score"], label))
        hands[row["patient_id"]] = (np.mean([s["score"] for s in scores.values()]), label)
    for bone, pairs in bones.items():
        assert metrics["auroc_bone"][bone] == pytest.approx(_auroc_by_counting(*zip(*pairs)), abs=1e-9), bone
    assert metrics["auroc_hand"] == pytest.approx(_auroc_by_counting(*zip(*hands.values())), abs=1e-9)
