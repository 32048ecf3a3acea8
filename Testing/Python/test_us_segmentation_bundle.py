"""The ``sjogren_us_segmentation`` bundle: model-zoo layout and metadata, MONAI's own bundle checks,
TorchScript export, two-process training, and the trained network on held-out phantom images."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

BUNDLE = REPO / "monai_bundle" / "sjogren_us_segmentation"
META = BUNDLE / "configs" / "metadata.json"
INFERENCE = BUNDLE / "configs" / "inference.json"


def _config(name: str) -> dict:
    return json.loads((BUNDLE / "configs" / f"{name}.json").read_text())


def _held_out(trained: Path, site: str = "mucosa") -> tuple[np.ndarray, np.ndarray]:
    """A validation-split image and its label map (never trained on), in rows x columns."""
    from PIL import Image

    datalist = json.loads((trained / "datalist.json").read_text())
    item = next(d for d in datalist["validation"] if Path(d["image"]).stem.endswith(site))
    pixels = np.asarray(Image.open(trained / item["image"]), dtype=np.float32)
    labels = np.minimum(np.asarray(Image.open(trained / item["label"])), 3)
    return pixels, labels


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * np.logical_and(a, b).sum() / max(a.sum() + b.sum(), 1)


def test_bundle_has_model_zoo_layout():
    for rel in ["configs/metadata.json", "configs/train.json", "configs/inference.json", "configs/evaluate.json",
                "configs/multi_gpu_train.json", "configs/demo.json", "configs/logging.conf", "docs/README.md",
                "LICENSE", "large_files.yml"]:
        assert (BUNDLE / rel).is_file(), rel
    scripts = sorted(p.name for p in (BUNDLE / "scripts").glob("*.py"))
    assert scripts == ["__init__.py", "datalist.py", "transforms.py", "weights.py"]
    large = (BUNDLE / "large_files.yml").read_text()
    assert 'path: "models/model.pt"' in large and 'hash_type: "sha256"' in large and "url:" in large
    assert "download_large_files" in large


def test_labels_from_logits_equal_monai_argmax_including_ties():
    import torch
    from monai.data import MetaTensor
    from monai.transforms import AsDiscreted

    from RheumImagingLib.bundle import bundle_imports

    with bundle_imports(BUNDLE):
        from scripts.transforms import LabelsFromLogitsd

    torch.manual_seed(0)
    logits = torch.randint(0, 3, (4, 64, 48)).float()  # many ties: the first maximum wins in both
    pred = MetaTensor(logits, meta={"filename_or_obj": "x.png"})
    ours = LabelsFromLogitsd("pred")({"pred": pred})["pred"]
    monai = AsDiscreted("pred", argmax=True)({"pred": pred})["pred"]
    assert ours.shape == (1, 64, 48) and ours.dtype == torch.float32
    assert torch.equal(torch.as_tensor(ours), torch.as_tensor(monai))
    assert ours.meta["filename_or_obj"] == "x.png"


def test_metadata_fields_and_version_rule():
    meta = json.loads(META.read_text())
    for key in ["schema", "version", "changelog", "monai_version", "pytorch_version", "numpy_version",
                "required_packages_version", "task", "description", "authors", "copyright", "license",
                "references", "network_data_format"]:
        assert meta.get(key), f"metadata.json lacks {key}"
    assert meta["schema"].startswith("https://github.com/Project-MONAI/MONAI-extra-test-data/releases/download/")
    # Model-zoo rule: the version is semantic and is the newest changelog entry.
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    newest = max(meta["changelog"], key=lambda v: tuple(int(x) for x in v.split(".")))
    assert newest == meta["version"]
    refs = " ".join(meta["references"])
    assert "OMERACT" in refs and "Sjogren" in refs and "buccal mucosa" in refs.lower()
    fmt = meta["network_data_format"]
    image, pred = fmt["inputs"]["image"], fmt["outputs"]["pred"]
    for part in (image, pred):
        for key in ["type", "format", "num_channels", "spatial_shape", "dtype", "value_range", "channel_def"]:
            assert key in part, key
    assert image["num_channels"] == 1 and len(image["spatial_shape"]) == 2
    assert pred["num_channels"] == 4
    assert pred["channel_def"] == {"0": "background", "1": "epithelium", "2": "submucosa", "3": "parenchyma"}



def test_configs_share_one_network_and_name_monai_label_keys():
    train, inference, multi = _config("train"), _config("inference"), _config("multi_gpu_train")
    assert train["network_def"] == inference["network_def"]
    net = inference["network_def"]
    assert net["spatial_dims"] == 2 and net["in_channels"] == 1 and net["out_channels"] == "@num_classes"
    assert inference["num_classes"] == train["num_classes"] == 4
    for key in ["network_def", "preprocessing", "inferer", "postprocessing", "device", "bundle_root"]:
        assert key in inference, key
    assert train["loss"]["_target_"] == "DiceCELoss"
    assert train["train"]["trainer"]["_target_"] == "SupervisedTrainer"
    assert train["validate"]["evaluator"]["_target_"] == "SupervisedEvaluator"
    assert multi["network"]["_target_"] == "torch.nn.parallel.DistributedDataParallel"
    assert multi["train#sampler"]["_target_"] == "DistributedSampler"
    demo = _config("demo")
    assert {k for k in demo if "#" not in k} <= set(train), "demo only overrides existing train settings"
    assert demo["max_epochs"] % demo["val_interval"] == 0, "the last epoch is validated and can be saved"


def test_verify_net_in_out_at_the_default_n():
    """Every size the metadata declares (32*n) works: at n=1 the bottleneck after four stride-2 steps is 2x2,
    where InstanceNorm has more than one value per channel (16*n gave it 1x1 and failed)."""
    from monai.bundle import verify_net_in_out

    for n in (1, 3):
        verify_net_in_out(net_id="network_def", meta_file=str(META), config_file=str(INFERENCE), n=n, any=1,
                          device="cpu", bundle_root=str(BUNDLE))


def test_torchscript_export_equals_eager(us_segmentation_trained, tmp_path):
    import torch
    from monai.bundle import ckpt_export

    from RheumImagingLib.bundle import Bundle, load_checkpoint

    checkpoint = us_segmentation_trained / "models" / "model.pt"
    exported = tmp_path / "model.ts"
    ckpt_export(net_id="network_def", filepath=str(exported), ckpt_file=str(checkpoint), meta_file=str(META),
                config_file=str(INFERENCE), bundle_root=str(BUNDLE))
    eager = Bundle(BUNDLE).get("network_def")
    load_checkpoint(eager, checkpoint)
    eager.eval()
    scripted = torch.jit.load(str(exported), map_location="cpu").eval()
    x = torch.rand(2, 1, 64, 80, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(scripted(x), eager(x), atol=1e-5, rtol=0)


def test_segmenter_labels_held_out_gland_parenchyma(us_segmentation_trained):
    """The seconds-long test training learns the parenchyma; the mucosa layers need the demo config's
    minutes (docs/README.md, "Expected results")."""
    from SjogrenUSLib.segmentation import USSegmenter

    segmenter = USSegmenter(us_segmentation_trained)
    pixels, truth = _held_out(us_segmentation_trained, "parotid_left")
    pixels, truth = pixels[:-3, 1:], truth[:-3, 1:]  # any size, not only the training patch grid
    labels = segmenter.predict(pixels)
    assert labels.shape == pixels.shape and labels.dtype == np.uint8
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    share = (truth == 3).mean()
    chance = 2 * share / (1 + share)  # Dice of calling every pixel parenchyma
    assert _dice(labels == 3, truth == 3) > max(0.8, chance + 0.3)
    provenance = segmenter.provenance()
    assert provenance["checkpoint_sha256"] == json.loads(
        (us_segmentation_trained / "models" / "training.json").read_text())["checkpoint_sha256"]
    assert provenance["bundle_version"] == json.loads(META.read_text())["version"]


def test_inference_config_writes_what_the_segmenter_predicts(us_segmentation_trained, tmp_path):
    from PIL import Image

    from RheumImagingLib.bundle import Bundle
    from SjogrenUSLib.segmentation import USSegmenter

    datalist = json.loads((us_segmentation_trained / "datalist.json").read_text())
    image = (us_segmentation_trained / datalist["validation"][1]["image"]).resolve()
    bundle = Bundle(us_segmentation_trained, "inference",
                    overrides={"datalist": [str(image)], "output_dir": str(tmp_path)})
    bundle.run()
    written = np.asarray(Image.open(tmp_path / f"{image.stem}_seg.png"))  # MONAI keeps the file's orientation
    expected = USSegmenter(us_segmentation_trained).predict(np.asarray(Image.open(image), dtype=np.float32))
    assert np.array_equal(written, expected)


def test_evaluate_config_reports_dice_per_label(us_segmentation_trained, tmp_path):
    import csv

    from RheumImagingLib.bundle import Bundle

    datalist = str(us_segmentation_trained / "datalist.json")
    Bundle(us_segmentation_trained, ["train", "evaluate"], overrides={"output_dir": str(tmp_path), "datalist": datalist}).run()
    with open(tmp_path / "val_dice_per_label_summary.csv") as f:
        rows = {r[0]: r[1:] for r in csv.reader(f)}
    assert "mean" in rows["class"] and {"class0", "class1", "class2"} <= set(rows)
    mean_col = rows["class"].index("mean")
    parenchyma = float(rows["class2"][mean_col])
    assert parenchyma > 0.5


def test_multi_gpu_config_two_processes_end_with_identical_weights(us_segmentation_trained, tmp_path):
    import torch

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dump = tmp_path / "dump_weights.json"
    dump.write_text(json.dumps({"finalize": [
        f"$torch.save(@network_def.state_dict(), {str(tmp_path)!r} + '/rank%d.pt' % dist.get_rank())",
        "$dist.is_initialized() and dist.destroy_process_group()",
    ]}))
    configs = [str(BUNDLE / "configs" / f"{n}.json") for n in ("train", "demo", "multi_gpu_train")] + [str(dump)]
    datalist = us_segmentation_trained / "datalist.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
           f"--master_port={port}", "-m", "monai.bundle", "run", "--config_file", json.dumps(configs),
           "--meta_file", str(META), "--logging_file", str(BUNDLE / "configs" / "logging.conf"),
           "--bundle_root", str(tmp_path), "--datalist", str(datalist), "--max_epochs", "1", "--val_interval", "1",
           "--patch_size", "[64, 64]"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(BUNDLE)}  # the bundle's scripts, as the zoo runs
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    rank0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    initial = torch.load(us_segmentation_trained / "models" / "model.pt", weights_only=True)
    assert rank0.keys() == rank1.keys() == initial.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    saved = torch.load(tmp_path / "models" / "model.pt", weights_only=True)  # rank 0, after the one epoch
    assert all(torch.equal(saved[k], rank0[k]) for k in rank0)


def test_build_datalist_splits_patients_and_names_missing_files(us_segmentation_trained, tmp_path):
    from RheumImagingLib.errors import InputError
    from SjogrenUSLib.segmentation import build_datalist

    cohort = Path(json.loads((us_segmentation_trained / "models" / "training.json").read_text())["cohort"])
    out = build_datalist(cohort, tmp_path / "list.json", val_fraction=0.5, seed=3)
    data = json.loads(out.read_text())
    train_ids = {d["patient_id"] for d in data["training"]}
    val_ids = {d["patient_id"] for d in data["validation"]}
    assert train_ids and val_ids and not train_ids & val_ids
    assert len(data["training"]) == 5 * len(train_ids)
    assert all((tmp_path / d["label"]).is_file() for d in data["training"] + data["validation"])
    with pytest.raises(InputError, match="already exists"):
        build_datalist(cohort, out)
    broken = tmp_path / "broken" / "cohort.csv"
    broken.parent.mkdir()
    broken.write_text(cohort.read_text())
    with pytest.raises(InputError, match=r"mucosa\.png: missing \(row 2, column mucosa_image\)"):
        build_datalist(broken, tmp_path / "broken.json")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("id,image\nA,a.dcm\n")
    with pytest.raises(InputError, match="missing column.s. patient_id"):
        build_datalist(wrong, tmp_path / "wrong.json")


def test_training_never_writes_into_a_used_folder(us_segmentation_trained, tmp_path):
    from RheumImagingLib.errors import InputError
    from SjogrenUSLib.segmentation import BUNDLE_DIR, train_segmentation

    keep = tmp_path / "mine.txt"
    keep.write_text("user data")
    cohort = json.loads((us_segmentation_trained / "models" / "training.json").read_text())["cohort"]
    with pytest.raises(InputError, match="not empty"):
        train_segmentation(BUNDLE_DIR, cohort, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt"] and keep.read_text() == "user data"


def test_segmenter_refuses_weights_of_another_network(tmp_path):
    import shutil

    import torch

    from RheumImagingLib.errors import InputError
    from SjogrenUSLib.segmentation import USSegmenter

    bundle = tmp_path / "bundle"
    shutil.copytree(BUNDLE / "configs", bundle / "configs")
    (bundle / "models").mkdir()
    torch.save({"conv.weight": torch.zeros(1)}, bundle / "models" / "model.pt")
    with pytest.raises(InputError, match="do not fit"):
        USSegmenter(bundle)
    with pytest.raises(InputError, match="checkpoint not found"):
        USSegmenter(BUNDLE, checkpoint=tmp_path / "absent.pt")
