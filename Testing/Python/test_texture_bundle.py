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
    from RheumTextureLib.cli import main

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
    assert (tmp_path / "model_fold0.pt").is_file()


def test_texture_ensemble_scores_every_bone_with_every_fold(texture_bundle_trained):
    from RheumTextureLib.phantom import render_hand
    from RheumTextureLib.texture import TextureEnsemble

    ens = TextureEnsemble(texture_bundle_trained)
    assert len(ens.network.models) == 5
    img, truth = render_hand(77, 1)
    contours = {b: v["contour"] for b, v in truth["bones"].items()}
    scores = ens.score(img, contours)
    assert set(scores) == {"MC2", "MC3", "MC4"}
    for s in scores.values():
        assert len(s["fold_probabilities"]) == 5 and all(0 < p < 1 for p in s["fold_probabilities"])
        assert s["score"] == pytest.approx(np.mean(s["fold_probabilities"]), abs=1e-6)
    assert ens.hand_score(scores) == pytest.approx(np.mean([s["score"] for s in scores.values()]))
    # one bone scored alone gives the same numbers (batching does not mix bones: eval-mode BN)
    alone = ens.score(img, {"MC3": contours["MC3"]})
    assert alone["MC3"]["score"] == pytest.approx(scores["MC3"]["score"], abs=1e-6)
    prov = ens.provenance()
    assert prov["bundle_version"] == "0.1.0" and len(prov["checkpoint_sha256"]) == 5
    assert all(len(h) == 64 for h in prov["checkpoint_sha256"])


def test_texture_ensemble_without_checkpoints_is_a_clear_error(tmp_path):
    import shutil

    from RheumImagingLib.errors import InputError
    from RheumTextureLib.texture import TextureEnsemble

    shutil.copytree(BUNDLE, tmp_path / "b", ignore=shutil.ignore_patterns("models", "__pycache__"))
    with pytest.raises(InputError, match="model_fold"):
        TextureEnsemble(tmp_path / "b")


def test_evaluate_config_reports_auroc_per_bone_and_per_hand(texture_bundle_trained, texture_datalist, tmp_path):
    b = Bundle(texture_bundle_trained, ["inference", "trained_with", "evaluate"],
               {"eval_datalist": str(texture_datalist), "output_dir": str(tmp_path)})
    b.run(("run",))
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n_bones"] == 30 and metrics["n_hands"] == 10
    assert set(metrics["auroc_bone"]) == {"MC2", "MC3", "MC4"}
    assert 0.0 <= metrics["auroc_hand"] <= 1.0
