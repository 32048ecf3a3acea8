"""The ``sjogren_us_segmentation`` bundle copied alone into an empty folder runs with ``python -m monai.bundle``
from outside it (``--bundle_root``, ``--dataset_dir``, ``--output_dir``), with MONAI and its own ``scripts/`` only:
the extension's packages are made unimportable in the subprocesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

BUNDLE = REPO / "monai_bundle" / "sjogren_us_segmentation"
EXTENSION_PACKAGES = ("RheumImagingLib", "SjogrenUSLib", "RheumTextureLib")


def _tiny_image(rng) -> tuple[np.ndarray, np.ndarray]:
    """A 48 x 64 (rows x columns) image with epithelium, submucosa and a parenchyma block, and its label map."""
    labels = np.zeros((48, 64), np.uint8)
    labels[6:10], labels[10:20], labels[26:42, 16:48] = 1, 2, 3
    pixels = (30 + 50 * labels + rng.normal(0, 8, labels.shape)).clip(0, 255).astype(np.uint8)
    return pixels, labels


def _run(args: list[str], cwd: Path, poison: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(poison), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def alone(tmp_path_factory):
    """The bundle copied into an empty folder, a dataset folder (images/ + labels/, PNG), and a Python path on
    which importing any extension package fails."""
    from PIL import Image

    root = tmp_path_factory.mktemp("us_bundle_alone")
    bundle = root / "copy" / "sjogren_us_segmentation"
    shutil.copytree(BUNDLE, bundle, ignore=shutil.ignore_patterns("__pycache__", "models", "eval", "*.pt"))
    poison = root / "poison"
    for name in EXTENSION_PACKAGES:
        (poison / name).mkdir(parents=True)
        (poison / name / "__init__.py").write_text(f"raise ImportError('the bundle imported {name}')\n")
    data = root / "data"
    rng = np.random.default_rng(0)
    for folder in ("images", "labels"):
        (data / folder).mkdir(parents=True)
    for patient in ("p1", "p2", "p3"):
        for site in ("mucosa", "parotid"):
            pixels, labels = _tiny_image(rng)
            Image.fromarray(pixels).save(data / "images" / f"{patient}_{site}.png")
            Image.fromarray(labels).save(data / "labels" / f"{patient}_{site}.png")
    return {"root": root, "bundle": bundle, "poison": poison, "data": data}


def test_datalist_train_infer_evaluate_from_outside_the_bundle(alone):
    from PIL import Image

    root, bundle, data, poison = alone["root"], alone["bundle"], alone["data"], alone["poison"]
    made = _run([str(bundle / "scripts" / "datalist.py"), "--dataset_dir", str(data), "--val_fraction", "0.34"],
                root, poison)
    assert made.returncode == 0, made.stderr[-2000:]
    datalist = json.loads((data / "datalist.json").read_text())
    patients = [{Path(d["image"]).name.split("_")[0] for d in datalist[k]} for k in ("training", "validation")]
    assert len(patients[1]) == 1 and not patients[0] & patients[1], "split by patient"

    # max_epochs below val_interval: the last epoch is still validated and the model saved
    common = ["-m", "monai.bundle", "run", "--bundle_root", str(bundle), "--meta_file",
              str(bundle / "configs" / "metadata.json"), "--logging_file", str(bundle / "configs" / "logging.conf")]
    trained = _run([*common, "--config_file", str(bundle / "configs" / "train.json"), "--dataset_dir", str(data),
                    "--max_epochs", "2", "--val_interval", "10", "--patch_size", "[32, 32]", "--num_workers", "0"],
                   root, poison)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert (bundle / "models" / "model.pt").is_file()

    # inference on a folder: a PNG and the same pixels as a (rows, columns) .npy give the same label map
    images = root / "to_label"
    images.mkdir()
    shutil.copy(data / "images" / "p1_mucosa.png", images / "a.png")
    np.save(images / "b.npy", np.asarray(Image.open(images / "a.png"), dtype=np.float32))
    out = root / "labelled"
    inferred = _run([*common, "--config_file", str(bundle / "configs" / "inference.json"), "--dataset_dir",
                     str(images), "--output_dir", str(out)], root, poison)
    assert inferred.returncode == 0, inferred.stderr[-3000:]
    a, b = (np.asarray(Image.open(out / f"{n}_seg.png")) for n in ("a", "b"))
    assert a.shape == b.shape == (48, 64) and a.dtype == np.uint8
    assert np.array_equal(a, b) and set(np.unique(a)) <= {0, 1, 2, 3}

    evaluated = _run([*common, "--config_file", json.dumps([str(bundle / "configs" / f"{n}.json")
                                                             for n in ("train", "evaluate")]),
                      "--dataset_dir", str(data), "--output_dir", str(root / "eval")], root, poison)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert (root / "eval" / "val_dice_per_label_summary.csv").is_file()


def test_inference_without_weights_names_the_file_and_the_readme_section(alone, tmp_path):
    bundle = tmp_path / "no_weights"
    shutil.copytree(alone["bundle"], bundle, ignore=shutil.ignore_patterns("models", "__pycache__"))
    result = _run(["-m", "monai.bundle", "run", "--config_file", str(bundle / "configs" / "inference.json"),
                   "--bundle_root", str(bundle), "--dataset_dir", str(alone["data"] / "images"), "--output_dir",
                   str(tmp_path / "out")], tmp_path, alone["poison"])
    assert result.returncode != 0
    assert f"{bundle}/models/model.pt: no trained weights" in result.stderr
    assert "docs/README.md, section 'Training'" in result.stderr and "download_large_files" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_single_slice_volume_as_slicer_uploads_gives_a_2d_uint8_label_map():
    """MONAI Label loads a 2-D image that Slicer sent as NIfTI as [X, Y, 1]; the declared pipeline (loader aside)
    labels it exactly as the 2-D frame, without channel or slice axis, in uint8."""
    import torch
    from monai.data import MetaTensor
    from monai.transforms import Compose, LoadImaged, SaveImaged

    from RheumImagingLib.bundle import Bundle

    bundle = Bundle(BUNDLE, "inference")
    torch.manual_seed(0)
    network = bundle.get("network_def").eval()
    pre = Compose([t for t in bundle.get("preprocessing").transforms if not isinstance(t, LoadImaged)])
    post = Compose([t for t in bundle.get("postprocessing").transforms if not isinstance(t, SaveImaged)])
    inferer = bundle.get("inferer")
    frame = torch.rand(70, 50, generator=torch.Generator().manual_seed(1))

    def label(image):
        data = pre({"image": image})
        with torch.no_grad():
            data["pred"] = inferer(data["image"][None], network)[0]
        return post(data)["pred"]

    flat = label(MetaTensor(frame, meta={"filename_or_obj": "frame.png"}))
    volume = label(MetaTensor(frame[..., None], meta={"filename_or_obj": "upload.nii.gz"}))
    assert volume.shape == flat.shape == (70, 50) and volume.dtype == torch.uint8
    assert torch.equal(torch.as_tensor(volume), torch.as_tensor(flat))
