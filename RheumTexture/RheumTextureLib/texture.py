"""The RA texture score: the ra_bone_texture bundle's 5-fold Deep-TEN ensemble, loaded once."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from RheumImagingLib.bundle import Bundle, bundle_imports, default_bundle_root
from RheumImagingLib.errors import InputError

BUNDLE_DIR = default_bundle_root() / "ra_bone_texture"


class TextureEnsemble:
    """Scores the distal third of each bone of an image with every fold model (models loaded once)."""

    def __init__(self, bundle_dir, device: str = "cpu", overrides: dict | None = None, runtime: str = "auto"):
        import torch

        from RheumImagingLib.runtime import prepare

        self.bundle = Bundle(bundle_dir, ["inference", *self._extra_configs(bundle_dir)], overrides)
        self.checkpoints = [str(p) for p in self.bundle.get("checkpoints")]
        if not self.checkpoints:
            raise InputError(Path(bundle_dir) / "models", "no fold checkpoints model_fold*.pt (train the bundle first)")
        self.device = torch.device(device)
        self.bundle.parser["device"] = f"$torch.device({device!r})"
        self.network = self.bundle.get("network").to(self.device).eval()
        size = int(self.bundle.get("patch_size"))
        for k, model in enumerate(self.network.models):  # the ensemble averages whatever runs each fold
            self.network.models[k] = prepare(model, (1, size, size), key=self.network.sha256[k], runtime=runtime,
                                             device=self.device, label=f"{self.bundle.name} fold {k + 1}")
        self.preprocessing = self.bundle.get("preprocessing")
        with bundle_imports(self.bundle.root):
            from scripts.roi import distal_third_frame

        self._distal_third_frame = distal_third_frame

    @staticmethod
    def _extra_configs(bundle_dir) -> list[str]:
        """A trained bundle records the override config it was trained with (``configs/trained_with.json``)."""
        return ["trained_with"] if (Path(bundle_dir) / "configs" / "trained_with.json").is_file() else []

    def score(self, image, contours: dict) -> dict:
        """bone -> {"fold_probabilities": [...], "score": mean}; one forward per fold for all bones."""
        import torch

        image = np.asarray(image, dtype=np.float32)
        if image.ndim != 2:
            raise InputError("image", f"expected a 2-D radiograph, got shape {image.shape}")
        bones = list(contours)
        if not bones:
            return {}
        # the transforms were built with the bundle's scripts; calling them imports nothing more
        patches = [self.preprocessing({"image": image, "contour": np.asarray(contours[b], float)})["image"]
                   for b in bones]
        with torch.no_grad():
            out = self.network(torch.stack([torch.as_tensor(p) for p in patches]).to(self.device)).cpu().numpy()
        return {b: {"fold_probabilities": [float(v) for v in out[i, 1:]], "score": float(out[i, 0])}
                for i, b in enumerate(bones)}

    def distal_third_frame(self, contour) -> dict:
        """The cut's oriented rectangle in pixels (to show the ROI); the same code as the cut."""
        return self._distal_third_frame(contour)

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
                overrides: dict | None = None) -> Path:
    """Run the bundle's train config once per fold; returns a ready-to-use bundle folder at ``out_dir``.

    ``out_dir`` is a copy of the bundle with ``models/model_fold{k}.pt``, ``datalist.json`` and
    ``configs/trained_with.json`` (the override config and overrides used, so inference builds the same net).
    """
    import json

    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(out_dir, "output folder exists and is not empty (choose a new folder)")
    shutil.copytree(bundle_dir, out_dir, ignore=shutil.ignore_patterns("__pycache__", "models", "eval"),
                    dirs_exist_ok=True)
    shutil.copyfile(datalist_path, out_dir / "datalist.json")
    configs = ["train"] + ([config] if config else [])
    trained_with = {}
    if config:
        trained_with.update(json.loads((out_dir / "configs" / f"{config}.json").read_text()))
    trained_with.update(overrides or {})
    keep = {k: v for k, v in trained_with.items() if k == "patch_size"}
    (out_dir / "configs" / "trained_with.json").write_text(json.dumps(keep, indent=4))
    for fold in folds:
        Bundle(out_dir, configs, {**(overrides or {}), "fold": int(fold)}).run()
    return out_dir
