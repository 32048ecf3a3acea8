"""The RA texture score: the ra_bone_texture bundle's 5-fold Deep-TEN ensemble, loaded once."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from RheumImagingLib.bundle import Bundle, bundle_imports, default_bundle_root
from RheumImagingLib.errors import InputError

BUNDLE_DIR = default_bundle_root() / "ra_bone_texture"
TRAINING_LIST = "training_images.json"  # in a trained bundle: the patients and radiograph files it learned from
# A fold's int8 graph is kept only if its RA probabilities on the fold's held-out patches are within this of eager
# PyTorch (else its fp32 graph is stored); docs/benchmarks.md has what it changed on held-out phantoms.
SCORE_TOLERANCE = 0.01
CALIBRATION_PATCHES = 64  # per fold: its training patches to calibrate the int8 ranges on, and held-out to check


class TextureEnsemble:
    """Scores the distal third of each bone of an image with every fold model (models loaded once)."""

    def __init__(self, bundle_dir, device: str = "cpu", overrides: dict | None = None, runtime: str = "auto"):
        import torch

        from RheumImagingLib.runtime import load

        self.bundle = Bundle(bundle_dir, "inference", overrides)
        self.checkpoints = [str(p) for p in self.bundle.get("checkpoints")]  # InputError naming missing folds
        self.device = torch.device(device)
        self.bundle.parser["device"] = f"$torch.device({device!r})"
        size = int(self.bundle.get("patch_size"))

        def load_fold(make_network, path):  # the ensemble averages whatever runs each fold
            return load(make_network, path, (1, size, size), label=f"{self.bundle.name} {Path(path).name}",
                        runtime=runtime, device=self.device)

        lazy = "load_fold" in self.bundle.parser  # a bundle trained before ra_bone_texture 0.3.2 builds its folds
        self.bundle.parser["load_fold"] = load_fold
        self.network = self.bundle.get("network").eval()
        if not lazy:
            for k, (model, path) in enumerate(zip(self.network.models, self.checkpoints)):
                self.network.models[k], _ = load_fold(lambda model=model: model, path)
        self.preprocessing = self.bundle.get("preprocessing")  # the bundle's declared transforms, without its loader
        with bundle_imports(self.bundle.root):
            from scripts.roi import patch_frame

        self._patch_frame = patch_frame
        self.patch_size = size
        self.patch_spacing_mm = self.bundle.get("patch_spacing_mm")
        self.fallback_spacing_mm = float(self.bundle.get("fallback_spacing_mm"))

    def score(self, image, contours: dict, spacing_mm=None) -> dict:
        """bone -> {"fold_probabilities": [...], "score": mean}; one forward per fold for all bones.

        ``spacing_mm``: the image's (row, col) pixel size; None (uncalibrated) uses the bundle's
        ``fallback_spacing_mm``."""
        import torch

        from RheumImagingLib.threads import torch_threads

        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 2:
            raise InputError("image", f"expected a 2-D radiograph, got shape {image.shape}")
        bones = list(contours)
        if not bones:
            return {}
        # the transforms were built with the bundle's scripts; calling them imports nothing more
        with torch_threads(1):  # patch-sized torch operations: see RheumImagingLib.threads
            patches = torch.stack([torch.as_tensor(self.preprocessing({
                "image": image, "contour": np.asarray(contours[b], float), "spacing": spacing_mm})["image"])
                for b in bones])
        with torch.no_grad():
            out = self.network(patches.to(self.device)).cpu().numpy()
        return {b: {"fold_probabilities": [float(v) for v in out[i, 1:]], "score": float(out[i, 0])}
                for i, b in enumerate(bones)}

    def distal_third_frame(self, contour, spacing_mm=None) -> dict:
        """The patch's oriented rectangle in pixels (to show the ROI); the same code as the cut."""
        spacing = self.fallback_spacing_mm if spacing_mm is None else spacing_mm
        return self._patch_frame(contour, self.patch_size, spacing_mm=spacing, patch_spacing_mm=self.patch_spacing_mm)

    def training_images(self) -> dict | None:
        """sha256 of each training radiograph file -> patient_id; None for a bundle without a training list."""
        return read_training_list(self.bundle.root)

    @staticmethod
    def hand_score(bone_scores: dict) -> float:
        """The hand's texture score: the mean of its bones' scores."""
        return float(np.mean([s["score"] for s in bone_scores.values()]))

    def provenance(self) -> dict:
        from RheumImagingLib.runtime import runtime_name

        return {"bundle": self.bundle.name, "bundle_version": self.bundle.version,
                "checkpoints": [Path(c).name for c in self.checkpoints],
                "checkpoint_sha256": list(self.network.sha256), "runtime": runtime_name(self.network.models[0])}


def train_folds(bundle_dir, datalist_path, out_dir, config: str | None = "demo", folds=range(5),
                overrides: dict | None = None, progress=None) -> Path:
    """Run the bundle's train config once per fold; returns a ready-to-use bundle folder at ``out_dir``.

    ``out_dir`` is a copy of the bundle with ``models/model.pt`` (fold 0) and ``models/model_fold{k}.pt``, their
    ONNX graphs (:func:`store_graphs`, once all folds are trained), ``datalist.json``, and the values it was
    trained with (the ``config`` file, then ``overrides``) written into its own configs
    (:mod:`RheumImagingLib.training_setup`): the trained bundle runs as trained, from the shell as from the
    extension. ``progress(stage, fraction)`` hears about every training iteration.
    """
    from RheumImagingLib.training_setup import new_training_copy

    out_dir = new_training_copy(bundle_dir, out_dir, config=config, overrides=overrides)
    shutil.copyfile(datalist_path, out_dir / "datalist.json")
    folds = list(folds)
    for k, fold in enumerate(folds):
        Bundle(out_dir, "train", {"fold": int(fold)}).train(
            f"texture fold {k + 1}/{len(folds)}", progress)
    if len(set(folds)) == int(Bundle(out_dir, "inference").get("n_folds")):
        try:
            store_graphs(out_dir)
        except Exception as exc:  # no onnxruntime here, or an export it cannot do: scoring exports (or runs eager)
            import logging

            logging.getLogger(__name__).warning("no ONNX graphs stored in %s (%s: %s); scoring will export them",
                                                out_dir / "models", exc.__class__.__name__, exc)
    return out_dir


def store_graphs(bundle_dir) -> dict:
    """The training-end step: each fold's ONNX graph beside its checkpoint (``models/model*.onnx``), so that
    scoring never exports. The graph is quantised to int8 (calibrated on up to ``CALIBRATION_PATCHES`` of the
    fold's training patches) and kept so if its RA probabilities on as many of the fold's held-out patches
    stay within ``SCORE_TOLERANCE`` of eager PyTorch; else the fp32 graph is stored. Returns checkpoint name ->
    {"graph": "int8" or "fp32", "largest_difference": on the held-out patches (None: none to check on)}."""
    import logging

    import torch

    from RheumImagingLib.runtime import load, store, stored_path

    bundle_dir = Path(bundle_dir)
    bundle = Bundle(bundle_dir, "inference", {
        "datalist": str(bundle_dir / "datalist.json"),
        "dataset#data": "$scripts.datalist.load_items(@datalist, @dataset_dir, ('training',))"})
    with bundle_imports(bundle.root):
        from scripts.checkpoints import fold_of
    dataset, network = bundle.get("dataset"), bundle.get("network").eval()
    shape = (1, int(bundle.get("patch_size")), int(bundle.get("patch_size")))
    folds = np.array([int(item["fold"]) for item in dataset.data])

    def patches(indices) -> torch.Tensor:
        """Up to CALIBRATION_PATCHES of these items' patches, spread over them (items are in cohort order)."""
        spread = indices[np.linspace(0, len(indices) - 1, min(len(indices), CALIBRATION_PATCHES)).round().astype(int)]
        return torch.stack([torch.as_tensor(dataset[int(i)]["image"], dtype=torch.float32) for i in spread])

    summary = {}
    for model, checkpoint, sha256 in zip(network.models, bundle.get("checkpoints"), network.sha256):
        fold, path = fold_of(checkpoint), stored_path(checkpoint)
        training, held_out = np.flatnonzero(folds != fold), np.flatnonzero(folds == fold)
        summary[path.name] = {"graph": "fp32", "largest_difference": None}
        if not len(training) or not len(held_out):
            store(model, shape, checkpoint=checkpoint, key=sha256)
            continue
        calibration = [batch.numpy() for batch in patches(training).split(16)]
        store(model, shape, checkpoint=checkpoint, key=sha256, calibration=calibration)
        quantised, _ = load(lambda: model, checkpoint, shape, label=f"fold {fold}", runtime="onnxruntime")
        with torch.no_grad():
            x = patches(held_out)
            difference = float((torch.sigmoid(quantised(x)) - torch.sigmoid(model(x))).abs().max())
        summary[path.name] = {"graph": "int8", "largest_difference": difference}
        if difference > SCORE_TOLERANCE:
            logging.getLogger(__name__).warning(
                "%s: int8 probabilities differ from eager by up to %.3g on the fold's held-out patches (tolerance "
                "%g); storing the fp32 graph", Path(checkpoint).name, difference, SCORE_TOLERANCE)
            store(model, shape, checkpoint=checkpoint, key=sha256)
            summary[path.name]["graph"] = "fp32"
    return summary


def write_training_list(bundle_dir, cohort_csv) -> Path:
    """Record in a trained bundle which patients and radiograph files (sha256) it was trained on.

    ``rheumtexture score`` marks a radiograph ``in_training`` when its file is one of these: files,
    not patient IDs, because IDs repeat across cohorts (every phantom cohort starts at RA0001).
    """
    import json

    from RheumImagingLib.bundle import sha256_of
    from RheumImagingLib.cohort_folder import read_cohort

    cohort_csv = Path(cohort_csv)
    rows = read_cohort(cohort_csv, ("patient_id", "image"))
    images = {sha256_of(cohort_csv.parent / r["image"]): r["patient_id"] for r in rows}
    path = Path(bundle_dir) / TRAINING_LIST
    path.write_text(json.dumps({"patients": sorted({r["patient_id"] for r in rows}), "images_sha256": images},
                               indent=1))
    return path


def read_training_list(bundle_dir) -> dict | None:
    import json

    path = Path(bundle_dir) / TRAINING_LIST
    return json.loads(path.read_text())["images_sha256"] if path.is_file() else None


def out_of_fold_scores(bundle_dir) -> list[dict]:
    """Each training bone of a trained bundle scored by the one fold model that did not see it.

    Items come from the bundle's ``datalist.json`` (their ``fold``), through the evaluate config's
    dataset (the same preprocessing as inference); returns ``{patient_id, image, bone, label,
    fold, score}`` per bone.
    """
    import json

    import torch

    bundle_dir = Path(bundle_dir)
    datalist = bundle_dir / "datalist.json"
    items = json.loads(datalist.read_text())["training"]
    bundle = Bundle(bundle_dir, ["inference", "evaluate"], {"datalist": str(datalist)})
    network = bundle.get("network").eval()
    with bundle_imports(bundle.root):
        from scripts.checkpoints import fold_of
    columns = {fold_of(c): k + 1 for k, c in enumerate(bundle.get("checkpoints"))}
    rows = []
    with torch.no_grad():
        for batch in bundle.get("dataloader"):
            probs = network(batch["image"]).numpy()
            for i in range(probs.shape[0]):
                item = items[len(rows)]
                rows.append({k: item[k] for k in ("patient_id", "image", "bone", "label", "fold")}
                            | {"score": float(probs[i, columns[item["fold"]]])})
    return rows
