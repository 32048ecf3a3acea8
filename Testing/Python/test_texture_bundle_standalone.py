"""The ra_bone_texture bundle copied alone into an empty folder runs with MONAI's own command line
(``python -m monai.bundle run``), from outside the folder, with only MONAI and the bundle's scripts/
(``PYTHONPATH=<bundle>``, as docs/README.md says): the extension's packages are made unimportable."""

import csv
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO

BUNDLE = REPO / "monai_bundle" / "ra_bone_texture"
SIZES = ["--patch_size", "32", "--patch_spacing_mm", "0.5", "--batch_size", "2", "--num_workers", "0"]


def _bone_image(rng, rough: bool):
    """A 96 x 64 radiograph with one vertical bone (bright rectangle); RA bones get a rougher texture."""
    image = rng.normal(0.2, 0.02, (96, 64)).astype(np.float32)
    noise = rng.normal(0, 0.15 if rough else 0.03, (70, 20))
    image[13:83, 22:42] = 0.8 + noise
    contour = [[32, 13], [22, 13], [22, 83], [42, 83], [42, 13]]  # x, y; point 0 at the distal (top) end
    return image, contour


@pytest.fixture(scope="module")
def standalone(tmp_path_factory):
    """An empty folder holding the copied bundle, a dataset folder (npy images + datalist.json), and an
    environment in which RheumImagingLib / RheumTextureLib cannot be imported."""
    root = tmp_path_factory.mktemp("standalone")
    bundle = root / "bundle"
    shutil.copytree(BUNDLE, bundle, ignore=shutil.ignore_patterns("__pycache__", "models", "eval"))
    data = root / "data"
    (data / "images").mkdir(parents=True)
    rng = np.random.default_rng(5)
    items = []
    for k in range(8):
        label = k % 2
        image, contour = _bone_image(rng, rough=bool(label))
        np.save(data / "images" / f"P{k}.npy", image)
        items.append({"image": f"images/P{k}.npy", "contour": contour, "spacing": [0.25, 0.25], "bone": "MC3",
                      "patient_id": f"P{k}", "label": label, "fold": k // 2 % 2})
    (data / "datalist.json").write_text(json.dumps({"training": items}))
    blocked = root / "blocked"
    for name in ("RheumImagingLib", "RheumTextureLib"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('the bundle imported {name}')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocked), str(bundle)]), "OMP_NUM_THREADS": "1"}
    return {"root": root, "bundle": bundle, "data": data, "env": env}


def _monai_run(s, configs, *args):
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", configs, "--bundle_root", str(s["bundle"]),
           "--dataset_dir", str(s["data"]), *SIZES, *args]
    return subprocess.run(cmd, cwd=s["root"], env=s["env"], capture_output=True, text=True, timeout=300)


def test_inference_without_weights_names_the_missing_files_and_the_readme_section(standalone):
    out = _monai_run(standalone, str(standalone["bundle"] / "configs" / "inference.json"),
                     "--output_dir", str(standalone["root"] / "none"))
    assert out.returncode != 0
    assert "fold weights missing: model.pt, model_fold1.pt" in out.stderr
    assert "docs/README.md, section 'Weights'" in out.stderr
    assert "torch.cat" not in out.stderr


def test_train_then_inference_and_evaluate_from_the_shell(standalone):
    s = standalone
    configs = s["bundle"] / "configs"
    trained = _monai_run(s, str(configs / "train.json"), "--output_dir", str(s["root"] / "train_out"),
                         "--max_epochs", "1", "--val_interval", "1")
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (s["bundle"] / "models" / "model.pt").is_file()  # fold 0 under the model zoo's name
    validation = json.loads((s["root"] / "train_out" / "validation_fold0.json").read_text())
    assert "val_auroc" in validation["metrics"]

    out = s["root"] / "scores"
    inferred = _monai_run(s, str(configs / "inference.json"), "--output_dir", str(out), "--n_folds", "1")
    assert inferred.returncode == 0, inferred.stderr[-3000:]
    with open(out / "scores_bones.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["patient_id"] for r in rows] == [f"P{k}" for k in range(8)]
    assert all(r["score"] == r["fold0"] for r in rows)  # one fold: its probability is the score
    with open(out / "scores_hands.csv") as f:
        assert len(list(csv.DictReader(f))) == 8

    evaluated = _monai_run(s, f"['{configs / 'inference.json'}','{configs / 'evaluate.json'}']",
                           "--output_dir", str(s["root"] / "eval"), "--n_folds", "1")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    metrics = json.loads((s["root"] / "eval" / "metrics.json").read_text())
    assert metrics["n_bones"] == 8 and metrics["n_hands"] == 8


def test_training_without_a_datalist_names_it_and_the_readme_section(tmp_path):
    from RheumImagingLib.bundle import Bundle
    from RheumImagingLib.errors import InputError

    bundle = Bundle(BUNDLE, "train", {"dataset_dir": str(tmp_path)})
    with pytest.raises(InputError, match=r"datalist\.json: datalist not found.*docs/README\.md, section 'Data'"):
        bundle.get("train#dataset")
