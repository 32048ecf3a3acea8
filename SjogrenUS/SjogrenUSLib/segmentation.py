"""Segmentation of buccal mucosa layers and gland parenchyma with the ``sjogren_us_segmentation`` bundle.

Slicer, the command line and the tests run the network the same way: the bundle's own
``inference.json`` is read the way MONAI Label reads it (``network_def``, ``preprocessing``
without the file loader, ``inferer``, ``postprocessing`` without the file writer), and the
weights are loaded once, with ``weights_only=True``, their sha256 kept for provenance.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from RheumImagingLib.bundle import Bundle, default_bundle_root, load_checkpoint
from RheumImagingLib.cohort_folder import read_cohort
from RheumImagingLib.console import log_file
from RheumImagingLib.errors import InputError

#: The extension's copy of the bundle (the default for the module and the CLI).
BUNDLE_DIR = default_bundle_root() / "sjogren_us_segmentation"

#: Output label values of the network (0 is background).
LABELS = {1: "epithelium", 2: "submucosa", 3: "parenchyma"}

#: Image columns of a phantom (or user) cohort.csv; each names ``<stem>.dcm`` with ``<stem>.png``
#: and the label map ``<stem>_labels.png`` beside it.
SITE_COLUMNS = (
    "mucosa_image",
    "parotid_left_image",
    "parotid_right_image",
    "submandibular_left_image",
    "submandibular_right_image",
)


class USSegmenter:
    """The trained network of a bundle folder, loaded once; ``predict`` labels one 2-D image."""

    def __init__(self, bundle_dir: str | Path = BUNDLE_DIR, device: str = "cpu", checkpoint: str | Path | None = None,
                 runtime: str = "auto"):
        import torch
        from monai.transforms import Compose, LoadImaged, SaveImaged

        from RheumImagingLib.runtime import prepare

        self.bundle = Bundle(bundle_dir, "inference")
        self.bundle.parser["device"] = f"$torch.device('{torch.device(device)}')"
        self.device = torch.device(device)
        self.checkpoint = Path(checkpoint) if checkpoint else self.bundle.root / "models" / "model.pt"
        network = self.bundle.get("network_def")
        self.checkpoint_sha256 = load_checkpoint(network, self.checkpoint, key="model")
        window = (1, *self.bundle.get("patch_size"))  # the sliding window's input (roi_size)
        self.network = prepare(network.to(self.device), window, key=self.checkpoint_sha256, runtime=runtime,
                               device=self.device, label=f"{self.bundle.name} network")
        # As MONAI Label's BundleInferTask: the caller supplies the pixels, nothing is written.
        pre = self.bundle.get("preprocessing").transforms
        post = self.bundle.get("postprocessing").transforms
        self._pre = Compose([t for t in pre if not isinstance(t, LoadImaged)])
        self._post = Compose([t for t in post if not isinstance(t, SaveImaged)])
        self._inferer = self.bundle.get("inferer")

    def predict(self, pixels) -> np.ndarray:
        """Label map (uint8, same shape as ``pixels``): 0 background, 1 epithelium, 2 submucosa, 3 parenchyma.

        ``pixels`` is a rows x columns array (depth down the rows), any intensity range.
        """
        import torch
        from monai.data import MetaTensor

        array = np.asarray(pixels, dtype=np.float32)
        if array.ndim != 2 or min(array.shape) < 2:
            raise ValueError(f"predict expects one 2-D grayscale image, got shape {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError("predict expects finite pixel values")
        # The bundle works in MONAI's PNG convention (axis 0 lateral x, axis 1 depth y).
        image = MetaTensor(torch.from_numpy(np.ascontiguousarray(array.T)))
        data = self._pre({"image": image})
        with torch.no_grad():
            logits = self._inferer(data["image"][None].to(self.device), self.network)
        data["pred"] = logits[0].cpu()
        labels = np.asarray(self._post(data)["pred"])  # (x, y) uint8: the postprocessing drops the channel axis
        return np.ascontiguousarray(labels.T)

    def provenance(self) -> dict[str, str]:
        """Attributes to store on the nodes this network produced."""
        from RheumImagingLib.runtime import runtime_name

        return {
            "bundle": self.bundle.name,
            "bundle_version": self.bundle.version,
            "bundle_dir": str(self.bundle.root),
            "checkpoint": str(self.checkpoint),
            "checkpoint_sha256": self.checkpoint_sha256,
            "labels": ", ".join(f"{k} {v}" for k, v in LABELS.items()),
            "runtime": runtime_name(self.network),
        }


def _relative(path: Path, folder: Path) -> str:
    """Datalist paths are relative to the datalist's folder, so the two can move together."""
    return os.path.relpath(path.resolve(), folder.resolve())


def build_datalist(cohort_csv: str | Path, out_json: str | Path, val_fraction: float = 0.2, seed: int = 0,
                   overwrite: bool = False) -> Path:
    """Write the bundle's datalist (MONAI decathlon format) from a cohort.csv.

    Each image cell ``images/<stem>.dcm`` (relative to the csv's folder) gives the pair
    ``<stem>.png`` / ``<stem>_labels.png``. Patients, not images, are split: a patient's five
    images go together to ``training`` or ``validation``. ``val_fraction=1`` puts the whole
    cohort in ``validation`` (a held-out set for ``evaluate.json``).
    """
    cohort_csv, out_json = Path(cohort_csv), Path(out_json)
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError("val_fraction must lie in [0, 1]")
    if out_json.exists() and not overwrite:
        raise InputError(out_json, "already exists; choose another path")
    rows = read_cohort(cohort_csv, ("patient_id",), SITE_COLUMNS)
    base = cohort_csv.parent
    pairs: dict[str, list[dict[str, str]]] = {}
    for number, row in enumerate(rows, start=2):
        pid = (row.get("patient_id") or "").strip()
        if not pid:
            raise InputError(cohort_csv, f"row {number}: empty patient_id")
        for column in SITE_COLUMNS:
            cell = (row.get(column) or "").strip()
            if not cell:
                continue
            stem = (base / cell).with_suffix("")
            image, label = stem.with_suffix(".png"), stem.parent / f"{stem.name}_labels.png"
            for path in (image, label):
                if not path.is_file():
                    raise InputError(path, f"missing (row {number}, column {column}): the bundle trains on "
                                           "<stem>.png images with <stem>_labels.png label maps")
            pairs.setdefault(pid, []).append({"image": _relative(image, out_json.parent),
                                              "label": _relative(label, out_json.parent), "patient_id": pid})
    patients = sorted(pairs)
    order = np.random.default_rng(seed).permutation(len(patients))
    n_val = int(round(val_fraction * len(patients)))
    if 0 < val_fraction < 1 and len(patients) > 1:
        n_val = min(max(n_val, 1), len(patients) - 1)
    val_ids = {patients[i] for i in order[:n_val]}
    datalist = {
        "description": f"built from {cohort_csv.resolve()} (seed {seed}, val_fraction {val_fraction}); split by patient",
        "labels": {"0": "background", **{str(k): v for k, v in LABELS.items()}},
        "training": [p for pid in patients if pid not in val_ids for p in pairs[pid]],
        "validation": [p for pid in patients if pid in val_ids for p in pairs[pid]],
    }
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(datalist, indent=1))
    return out_json


def train_segmentation(bundle_dir: str | Path, cohort_csv: str | Path, out_dir: str | Path, config: str | None = "demo",
                       val_fraction: float = 0.2, seed: int = 0, overrides: dict | None = None,
                       progress=None) -> Path:
    """Train the bundle on a cohort and return ``out_dir``: a copy of the bundle, ready to use, with
    ``models/model.pt`` (best validation mean Dice), its ``datalist.json``, ``models/training.json``
    and ``training.log`` (the full log, every iteration); ``progress(stage, fraction)`` hears about
    every iteration.

    ``config`` is an override config of the bundle (``"demo"``: few epochs on this CPU), or None for
    the full ``train.json`` recipe. The source bundle is never modified.
    """
    bundle_dir, out_dir = Path(bundle_dir), Path(out_dir)
    if not (bundle_dir / "configs" / "train.json").is_file():
        raise InputError(bundle_dir, "not a segmentation bundle (configs/train.json is missing)")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(out_dir, "already exists and is not empty; choose a new output folder")
    shutil.copytree(bundle_dir, out_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.pt", "*.ts", "eval", "__pycache__", "datalist.json",
                                                  "training.log"))
    (out_dir / "models").mkdir(exist_ok=True)
    datalist = build_datalist(cohort_csv, out_dir / "datalist.json", val_fraction=val_fraction, seed=seed)
    configs = ["train"] + ([config] if config and config != "train" else [])
    bundle = Bundle(out_dir, configs, overrides={"datalist": str(datalist.resolve()), **(overrides or {})})
    started = time.perf_counter()
    with log_file(out_dir / "training.log"):
        bundle.train("segmentation", progress)
    checkpoint = out_dir / "models" / "model.pt"
    if not checkpoint.is_file():
        raise RuntimeError(f"{out_dir}: training wrote no models/model.pt (max_epochs must reach val_interval)")
    record = {
        "configs": bundle.config_files,
        "overrides": overrides or {},
        "cohort": str(Path(cohort_csv).resolve()),
        "seed": seed,
        "val_fraction": val_fraction,
        "wall_s": round(time.perf_counter() - started, 1),
        "checkpoint_sha256": bundle.provenance(checkpoint)["checkpoint_sha256"],
    }
    (out_dir / "models" / "training.json").write_text(json.dumps(record, indent=1))
    return out_dir
