"""Metacarpal contours: the metacarpal_contour bundle (localiser + Curve-GCN), loaded once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from RheumImagingLib.bundle import Bundle, bundle_imports, default_bundle_root, load_checkpoint
from RheumImagingLib.cohort_folder import read_cohort
from RheumImagingLib.errors import InputError

BUNDLE_DIR = default_bundle_root() / "metacarpal_contour"
# the override keys inference must share with training (input and crop sizes)
_TRAINED_WITH_KEYS = ("localiser_size", "crop_size")


def _extra_configs(bundle_dir) -> list[str]:
    """A trained bundle records the sizes it was trained with (``configs/trained_with.json``)."""
    return ["trained_with"] if (Path(bundle_dir) / "configs" / "trained_with.json").is_file() else []


class MetacarpalContourer:
    """Contours MC2, MC3 and MC4 of a radiograph (fingers up) with the bundle's two networks."""

    def __init__(self, bundle_dir, device: str = "cpu", runtime: str = "auto"):
        import torch

        from RheumImagingLib.runtime import prepare

        self.bundle = Bundle(bundle_dir, ["inference", *_extra_configs(bundle_dir)])
        self.bundle.parser["device"] = f"$torch.device({device!r})"
        self.device = torch.device(device)
        models = self.bundle.root / "models"
        self.checkpoints = {"localiser": models / "localiser.pt", "curvegcn": models / "curvegcn.pt"}
        localiser = self.bundle.get("network_def")
        curvegcn = self.bundle.get("curvegcn_def")
        self.sha256 = {name: load_checkpoint(net, self.checkpoints[name])
                       for name, net in (("localiser", localiser), ("curvegcn", curvegcn))}
        crop = int(self.bundle.get("crop_size"))
        shapes = {"localiser": (1, *self.bundle.get("localiser_size")), "curvegcn": (1, crop, crop)}
        self.networks = {name: prepare(net.to(self.device), shapes[name], key=self.sha256[name], runtime=runtime,
                                       device=self.device, label=f"{self.bundle.name} {name}")
                         for name, net in (("localiser", localiser), ("curvegcn", curvegcn))}
        self.bundle.parser["network_def"] = self.networks["localiser"]
        self.bundle.parser["curvegcn_def"] = self.networks["curvegcn"]
        self.predictor = self.bundle.get("predictor")

    def predict(self, pixels) -> dict:
        """bone -> {"control_points": (40, 2) xy pixels from the distal tip, counter-clockwise on
        screen; "contour": (M, 2) closed spline; "mask": bool (rows, cols)}."""
        pixels = np.asarray(pixels, dtype=np.float32)
        if pixels.ndim != 2 or min(pixels.shape) < 16:
            raise InputError("image", f"expected a 2-D radiograph, got shape {pixels.shape}")
        if not np.isfinite(pixels).all() or float(pixels.max() - pixels.min()) <= 0:
            raise InputError("image", "the radiograph is constant or has non-finite values")
        with bundle_imports(self.bundle.root):
            try:
                result = self.predictor(pixels)
            except ValueError as exc:
                raise InputError("image", f"no metacarpal contours: {exc}") from None
        return {bone: {k: v for k, v in info.items() if k in ("control_points", "contour", "mask")}
                for bone, info in result.items()}

    def provenance(self) -> dict:
        from RheumImagingLib.runtime import runtime_name

        return {"bundle": self.bundle.name, "bundle_version": self.bundle.version,
                "checkpoints": [p.name for p in self.checkpoints.values()],
                "checkpoint_sha256": [self.sha256[name] for name in self.checkpoints],
                "runtime": runtime_name(self.networks["localiser"])}


def train_contour_bundle(bundle_dir, cohort_csv, out_dir, config: str | None = "demo",
                         overrides: dict | None = None, progress=None) -> Path:
    """Train stage 1 (localiser) and stage 2 (Curve-GCN) with the bundle's train config.

    ``out_dir`` becomes a ready-to-use copy of the bundle with ``models/localiser.pt``,
    ``models/curvegcn.pt``, ``cohort.csv`` (absolute image paths), ``configs/trained_with.json`` and
    ``models/shape_model.json`` (the quality control's model of the contours it draws, see ``quality.py``).
    The cohort's images need their truth JSON beside them (as phantoms write).
    ``progress(stage, fraction)`` hears about every training iteration.
    """
    import csv

    from RheumImagingLib.imageio import read_image

    from .quality import write_shape_model

    cohort_csv, out_dir = Path(cohort_csv), Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(out_dir, "output folder exists and is not empty (choose a new folder)")
    rows = read_cohort(cohort_csv, ("image",))
    for row in rows:
        image = (cohort_csv.parent / row["image"]).resolve()
        if not image.with_suffix(".json").is_file() or not image.with_suffix(".png").is_file():
            raise InputError(image, "needs the truth contours (.json) and .png beside it to train contours")
        if json.loads(image.with_suffix(".json").read_text()).get("laterality", "right") != "right":
            raise InputError(image, "a left hand: the contour model trains on right hands in its convention "
                                    "(write the phantoms with --laterality right)")
        row["image"] = str(image)
    shutil.copytree(bundle_dir, out_dir, ignore=shutil.ignore_patterns("__pycache__", "models", "eval"),
                    dirs_exist_ok=True)
    with open(out_dir / "cohort.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    configs = ["train"] + ([config] if config else [])
    trained_with = json.loads((out_dir / "configs" / f"{config}.json").read_text()) if config else {}
    trained_with.update(overrides or {})
    keep = {k: v for k, v in trained_with.items() if k in _TRAINED_WITH_KEYS}
    (out_dir / "configs" / "trained_with.json").write_text(json.dumps(keep, indent=4))
    for stage, name in ((1, "localiser"), (2, "Curve-GCN")):
        Bundle(out_dir, configs, {**(overrides or {}), "stage": stage}).train(
            f"contour {name} (stage {stage}/2)", progress, trainer="trainer")
    write_shape_model(out_dir, (read_image(row["image"]).pixels for row in rows))
    return out_dir
