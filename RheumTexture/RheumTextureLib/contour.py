"""Metacarpal contours: the metacarpal_contour bundle (localiser + Curve-GCN), loaded once.

The bundle's configs are the pipeline: scoring runs its declared ``image_transforms`` and ``postprocessing`` on
the array :func:`RheumImagingLib.imageio.read_image` decodes; training writes that same array once as ``.npy``
(:func:`RheumImagingLib.annotations.prepare_image`) and the bundle's loader reads it back, so the network sees the
same input at training and at scoring.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np

from RheumImagingLib.anatomy import BONES
from RheumImagingLib.bundle import Bundle, bundle_imports, default_bundle_root
from RheumImagingLib.errors import InputError

BUNDLE_DIR = default_bundle_root() / "metacarpal_contour"
# stage 1 (the localiser) is the bundle's main network, so it takes the model zoo's name
CHECKPOINTS = {"localiser": "model.pt", "curvegcn": "curvegcn.pt"}
DATALIST = "datalist.json"
WEIGHTS_HELP = "see the bundle's docs/README.md, section 'Weights': download or train them"


class MetacarpalContourer:
    """Contours MC2, MC3 and MC4 of a radiograph (fingers up) with the bundle's two networks."""

    def __init__(self, bundle_dir, device: str = "cpu", runtime: str = "auto"):
        import torch
        from monai.transforms import Compose

        from RheumImagingLib.runtime import load

        self.bundle = Bundle(bundle_dir, "inference")
        self.bundle.parser["device"] = f"$torch.device({device!r})"
        self.device = torch.device(device)
        models = self.bundle.root / "models"
        self.checkpoints = {name: models / file for name, file in CHECKPOINTS.items()}
        for path in self.checkpoints.values():
            if not path.is_file():
                raise InputError(path, f"trained weights not found ({WEIGHTS_HELP})")
        crop = int(self.bundle.get("crop_size"))
        self.input_shapes = {"localiser": (1, *self.bundle.get("localiser_size")), "curvegcn": (1, crop, crop)}
        self.networks, self.sha256 = {}, {}
        for name, definition in (("localiser", "network_def"), ("curvegcn", "curvegcn_def")):
            self.networks[name], self.sha256[name] = load(
                lambda definition=definition: self.bundle.get(definition), self.checkpoints[name],
                self.input_shapes[name], label=f"{self.bundle.name} {name}", runtime=runtime, device=self.device)
        self.bundle.parser["network"] = self.networks["localiser"]  # what the predictor runs
        self.bundle.parser["curvegcn"] = self.networks["curvegcn"]
        self.transforms = Compose(self.bundle.get("image_transforms"))  # the declared preprocessing, less the loader
        self.predictor = self.bundle.get("predictor")  # runs the declared postprocessing
        # a bundle trained before metacarpal_contour 0.2.3 always draws the sampled outline and the mask
        self._optional_outlines = "outlines" in inspect.signature(self.predictor).parameters

    def network_input(self, pixels) -> dict:
        """The declared preprocessing of a decoded image: ``image`` (1, h, w) for the localiser, ``image_full``."""
        import torch

        return self.transforms({"image": torch.as_tensor(np.asarray(pixels, dtype=np.float32))[None]})

    def predict(self, pixels) -> dict:
        """bone -> {"control_points": (40, 2) xy pixels from the distal tip, counter-clockwise on
        screen; "contour": (M, 2) closed spline; "mask": bool (rows, cols)}."""
        return self.predict_with_logits(pixels)[0]

    def predict_with_logits(self, pixels, outlines: bool = True) -> tuple[dict, object]:
        """:meth:`predict` and the localiser's logits it drew them from (the quality control's confidence reads
        them: the localiser runs once per image); ``outlines=False``: the control points only."""
        pixels = np.asarray(pixels, dtype=np.float32)
        if pixels.ndim != 2 or min(pixels.shape) < 16:
            raise InputError("image", f"expected a 2-D radiograph, got shape {pixels.shape}")
        spread = float(pixels.max() - pixels.min())  # not finite when any pixel is not
        if not np.isfinite(spread) or spread <= 0:
            raise InputError("image", "the radiograph is constant or has non-finite values")
        from RheumImagingLib.threads import torch_threads

        # the transforms and the predictor were built with the bundle's scripts; calling them imports nothing more
        with torch_threads(1):  # the image-sized torch operations, in one thread (see RheumImagingLib.threads)
            data = self.network_input(pixels)
        logits = self.predictor.localise(data)
        with torch_threads(1):
            boxes = self.predictor.boxes(data, logits)
        options = {} if outlines or not self._optional_outlines else {"outlines": False}
        try:
            result = self.predictor(data, boxes=boxes, **options)
        except ValueError as exc:
            raise InputError("image", f"no metacarpal contours: {exc}") from None
        keep = ("control_points", "contour", "mask") if outlines else ("control_points",)
        return {bone: {k: v for k, v in info.items() if k in keep} for bone, info in result.items()}, logits

    def provenance(self) -> dict:
        from RheumImagingLib.runtime import runtime_name

        return {"bundle": self.bundle.name, "bundle_version": self.bundle.version,
                "checkpoints": [p.name for p in self.checkpoints.values()],
                "checkpoint_sha256": [self.sha256[name] for name in self.checkpoints],
                "runtime": runtime_name(self.networks["localiser"])}


def network_points(contour, bundle_dir=BUNDLE_DIR) -> np.ndarray:
    """A drawn outline as the network learns it (the bundle's one resampling): 40 points from the distal tip,
    counter-clockwise on screen."""
    with bundle_imports(Path(bundle_dir).resolve()):
        from scripts.contours import to_network_points

        return to_network_points(contour)


def read_outlines(paths, geometry) -> dict[str, np.ndarray]:
    """bone -> (N, 2) pixel outline from markups curves (``.mrk.json``) or a segmentation / labelmap."""
    from RheumImagingLib.annotations import mask_to_contour, read_curves, read_masks

    outlines = {}
    for path in paths:
        if path.name.lower().endswith(".mrk.json"):
            found = read_curves([path], geometry)
        else:
            found = {name: mask_to_contour(mask) for name, mask in read_masks(path, geometry, BONES).items()
                     if np.any(mask)}
        twice = sorted(set(found) & set(outlines))
        if twice:
            raise InputError(path, f"{', '.join(twice)} drawn twice in this row's annotations")
        outlines.update({name: xy for name, xy in found.items() if name in BONES})
    missing = [b for b in BONES if b not in outlines]
    if missing:
        raise InputError(";".join(str(p) for p in paths), f"no outline named {', '.join(missing)} "
                         f"(closed curves or segments named {', '.join(BONES)}; labelmap values 1, 2, 3)")
    return outlines


def _refuse_left_hand(image: Path) -> None:
    """The contours are learnt on right hands, fingers up: a DICOM that says left is refused, not learnt mirrored."""
    if image.suffix.lower() in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".nrrd"):
        return
    import pydicom

    try:
        header = pydicom.dcmread(image, stop_before_pixels=True)
    except Exception:
        return  # not DICOM: prepare_image names the problem
    if "L" in (str(header.get("ImageLaterality", "")).strip(), str(header.get("Laterality", "")).strip()):
        raise InputError(image, "a left hand (DICOM laterality L): the contour model trains on right hands, fingers "
                                "up; leave its annotation empty or give a right hand")


def build_datalist(cohort_csv, out_json, prepared_dir, section: str = "training") -> Path:
    """The bundle's datalist from a cohort: each annotated row's image prepared once as ``.npy`` in
    ``prepared_dir`` and its MC2-MC4 outlines (as drawn, pixels) from the ``annotation`` column; rows without an
    annotation are left out (score-only)."""
    from RheumImagingLib.annotations import prepare_image
    from RheumImagingLib.cohort_folder import annotation_paths, read_cohort, row_file, row_spacing

    cohort_csv, out_json = Path(cohort_csv), Path(out_json)
    items = []
    for i, row in enumerate(read_cohort(cohort_csv, ("patient_id", "image", "annotation"))):
        paths = annotation_paths(cohort_csv, i, row, "annotation")
        image = row_file(cohort_csv, i, row, "image") if paths else None
        if image is None:
            continue
        _refuse_left_hand(image)
        prepared, geometry = prepare_image(image, prepared_dir, row_spacing(row, cohort_csv, i))
        try:
            outlines = read_outlines(paths, geometry)
        except InputError as exc:
            raise InputError(exc.path, f"{exc.reason} ({cohort_csv} row {i + 1}, column annotation)") from None
        items.append({"image": os.path.relpath(prepared, out_json.parent), "patient_id": row["patient_id"],
                      "source": str(image.resolve()),
                      "contours": {b: np.round(outlines[b], 3).tolist() for b in BONES}})
    if not items:
        raise InputError(cohort_csv, "no row has an image and an annotation to train the contours on "
                                     "(column 'annotation': Slicer closed curves MC2, MC3, MC4 or a segmentation)")
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps({"description": f"built from {cohort_csv.resolve()}", section: items}, indent=1))
    return out_json


def train_contour_bundle(bundle_dir, cohort_csv, out_dir, config: str | None = "demo",
                         overrides: dict | None = None, progress=None, prepared_dir=None,
                         val_fraction: float = 0.2, seed: int = 0) -> Path:
    """Train stage 1 (localiser) and stage 2 (Curve-GCN) with the bundle's train config.

    ``out_dir`` becomes a ready-to-use copy of the bundle (:mod:`RheumImagingLib.training_setup`) with
    ``models/model.pt`` (localiser), ``models/curvegcn.pt``, their ONNX graphs (:func:`store_graphs`),
    ``models/shape_model.json`` (the quality control's model of the contours it draws, see ``quality.py``),
    ``datalist.json`` and ``models/training.json``; the trained sizes are in its configs. ``val_fraction`` of the
    annotated patients (seeded split) go to the datalist's ``validation`` section: the networks do not train on
    them, and the quality control learns its limits on them. Images are prepared into ``prepared_dir`` (default
    ``out_dir/prepared``). ``progress(stage, fraction)`` hears about every training iteration.
    """
    from RheumImagingLib.training_setup import held_out_patients, new_training_copy, record_training

    from .quality import write_shape_model

    started = time.perf_counter()
    out_dir = Path(out_dir)
    created = not out_dir.exists()
    out_dir = new_training_copy(bundle_dir, out_dir, config=config, overrides=overrides)
    try:
        datalist = build_datalist(cohort_csv, out_dir / DATALIST, prepared_dir or out_dir / "prepared")
    except InputError:
        if created:  # no half-made bundle left behind
            shutil.rmtree(out_dir)
        raise
    items = json.loads(datalist.read_text())
    held_out = held_out_patients([item["patient_id"] for item in items["training"]], val_fraction, seed)
    items["validation"] = [item for item in items["training"] if item["patient_id"] in held_out]
    items["training"] = [item for item in items["training"] if item["patient_id"] not in held_out]
    datalist.write_text(json.dumps(items, indent=1))
    for stage, name in ((1, "localiser"), (2, "Curve-GCN")):
        Bundle(out_dir, "train", {"stage": stage}).train(f"contour {name} (stage {stage}/2)", progress)
    store_graphs(out_dir)
    write_shape_model(out_dir, *((np.load(out_dir / item["image"]) for item in items[section])
                                 for section in ("training", "validation")))
    record_training(out_dir, started, source=Path(bundle_dir).resolve(), config=config, overrides=overrides or {},
                    cohort=Path(cohort_csv).resolve(), datalist=datalist.name, val_fraction=val_fraction, seed=seed)
    return out_dir


def store_graphs(bundle_dir) -> None:
    """The training-end step: the localiser's and Curve-GCN's ONNX graphs (fp32) beside their checkpoints
    (``models/model.onnx``, ``models/curvegcn.onnx``), so that scoring never exports them. Without onnxruntime, or
    for a network the exporter cannot handle, a warning says so and scoring exports (or runs eager) as before."""
    from RheumImagingLib.runtime import store_or_warn

    contourer = MetacarpalContourer(bundle_dir, runtime="torch")
    for name, network in contourer.networks.items():
        store_or_warn(network, contourer.input_shapes[name], checkpoint=contourer.checkpoints[name],
                      key=contourer.sha256[name], what=f"the {name}")


def evaluate_contour_bundle(bundle_dir, cohort_csv, out_dir) -> dict:
    """The bundle's ``evaluate.json`` on an annotated cohort it did not train on: ``out_dir/metrics.json``
    (mean Dice, tip distance) and ``out_dir/per_bone.csv``; returns the metrics."""
    out_dir = Path(out_dir)
    datalist = build_datalist(cohort_csv, out_dir / "eval_datalist.json", out_dir / "prepared", section="validation")
    Bundle(bundle_dir, ["inference", "evaluate"], {"eval_datalist": str(datalist), "output_dir": str(out_dir)}).run()
    return json.loads((out_dir / "metrics.json").read_text())
