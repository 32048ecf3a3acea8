"""Every bundle is a model-zoo bundle: the files, the metadata fields MONAI's bundle
specification requires, the model zoo's version/changelog rule, MONAI Label's inference
keys. MONAI's own ``verify_metadata`` (against the schema in Testing/Data/monai) and the rest of the model zoo's CI
are in test_model_zoo.py."""

from __future__ import annotations

import json
import re

import pytest

from conftest import REPO

BUNDLES = {  # bundle -> words its references must cite
    "metacarpal_contour": ("Curve-GCN", "SAT0564"),
    "ra_bone_texture": ("Deep TEN", "SAT0564"),
    "sjogren_us_segmentation": ("OMERACT", "Sjogren"),
}
FILES = ["configs/metadata.json", "configs/train.json", "configs/inference.json", "configs/evaluate.json",
         "configs/multi_gpu_train.json", "configs/demo.json", "configs/logging.conf", "docs/README.md",
         "LICENSE", "large_files.yml"]
REQUIRED = ["schema", "version", "changelog", "monai_version", "pytorch_version", "numpy_version",
            "required_packages_version", "task", "description", "authors", "copyright", "license",
            "references", "network_data_format"]
TENSOR_FIELDS = ["type", "format", "num_channels", "spatial_shape", "dtype", "value_range", "is_patch_data",
                 "channel_def"]


def _semver(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


@pytest.mark.parametrize("name", BUNDLES)
def test_model_zoo_layout_and_metadata(name):
    root = REPO / "monai_bundle" / name
    for rel in FILES:
        assert (root / rel).is_file(), rel
    meta = json.loads((root / "configs" / "metadata.json").read_text())
    for key in REQUIRED:
        assert meta.get(key) not in (None, "", {}, []), f"{name}: metadata.json lacks {key}"
    assert re.fullmatch(r"\d+\.\d+\.\d+", meta["version"])
    assert meta["version"] == max(meta["changelog"], key=_semver), "the version is the newest changelog entry"
    references = " ".join(meta["references"])
    assert all(word in references for word in BUNDLES[name]), references
    for kind in ("inputs", "outputs"):
        for spec in meta["network_data_format"][kind].values():
            missing = [f for f in TENSOR_FIELDS if f not in spec]
            assert not missing, (name, kind, missing)
    configs = {n: json.loads((root / "configs" / f"{n}.json").read_text())
               for n in ("train", "inference", "evaluate", "multi_gpu_train", "demo")}
    for key in ("network_def", "preprocessing", "inferer", "postprocessing"):  # MONAI Label bundle tasks
        assert key in configs["inference"], key
    from monai.apps.utils import SUPPORTED_HASH_TYPES

    for entry in _large_files(root / "large_files.yml"):
        assert entry["url"].startswith("https://") and entry["path"].startswith("models/"), entry
        # what monai.bundle download_large_files accepts: a full digest of a supported type, or none
        assert entry.get("hash_type", "") in ("", *SUPPORTED_HASH_TYPES), entry
        if name != "sjogren_us_segmentation":  # that bundle keeps a placeholder that fails on purpose
            assert entry.get("hash_val", "") == "" or len(entry["hash_val"]) in (32, 40, 64, 128), entry


def _large_files(path):
    """The entries of a large_files.yml (flat `- key: "value"` items; PyYAML is not a dependency)."""
    entries = []
    for line in path.read_text().splitlines():
        item = line.strip()
        if item.startswith("#") or ":" not in item:
            continue
        if item.startswith("- "):
            entries.append({})
            item = item[2:]
        key, value = item.split(":", 1)
        if entries and key.strip() != "large_files":
            entries[-1][key.strip()] = value.strip().strip('"')
    return entries
