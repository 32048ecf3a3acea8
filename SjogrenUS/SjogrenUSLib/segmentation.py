"""Segmentation of buccal mucosa layers and gland parenchyma with the ``sjogren_us_segmentation`` bundle.

Slicer, the command line and the tests run the network the same way: the bundle's own
``inference.json`` is read the way MONAI Label reads it (``network_def``, ``preprocessing``
without the file loader, ``inferer``, ``postprocessing`` without the file writer), and the
weights are loaded once, with ``weights_only=True``, their sha256 kept for provenance.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from RheumImagingLib.anatomy import SITES, US_LABELS, US_SEGMENTS, annotation_column, image_column
from RheumImagingLib.annotations import SPACING_NONE, prepare_image, read_masks
from RheumImagingLib.bundle import Bundle, default_bundle_root, load_checkpoint
from RheumImagingLib.cohort_folder import annotation_paths, read_cohort, row_file, row_spacing
from RheumImagingLib.console import log_file
from RheumImagingLib.errors import InputError
from RheumImagingLib.prefetch import cores, network_threads
from RheumImagingLib.threads import torch_threads

from . import quality

#: The extension's copy of the bundle (the default for the module and the CLI).
BUNDLE_DIR = default_bundle_root() / "sjogren_us_segmentation"

#: Output label values of the network (0 is background); a focus (4) is drawn by readers, not predicted.
LABELS = {value: US_LABELS[value] for value in (1, 2, 3)}

#: Image columns of a cohort.csv (contract B); each may have a ``<site>_annotation`` beside it.
IMAGE_COLUMNS = tuple(image_column(site) for site in SITES)


class USSegmenter:
    """The trained network of a bundle folder, loaded once; ``predict`` labels one 2-D image.

    Each network call runs in half the cores (``prefetch.network_threads``: ONNX Runtime's session threads, or torch's
    inside :meth:`beside_other_images`), and two calls run at once: inside :meth:`beside_other_images` those of two
    images (``score_cli.score_studies`` predicts two images at once); outside it, with ONNX Runtime, the two halves of
    one image's windows (10.5 against 19.6 ms for 25 windows of 64 px on 2 cores; the same outputs to the bit, each
    window being computed alone)."""

    def __init__(self, bundle_dir: str | Path = BUNDLE_DIR, device: str = "cpu", checkpoint: str | Path | None = None,
                 runtime: str = "auto"):
        import torch
        from monai.transforms import Compose, LoadImaged, SaveImaged

        from RheumImagingLib.runtime import load

        self.bundle = Bundle(bundle_dir, "inference")
        self.bundle.parser["device"] = f"$torch.device('{torch.device(device)}')"
        self.device = torch.device(device)
        self.checkpoint = Path(checkpoint) if checkpoint else self.bundle.root / "models" / "model.pt"
        window = (1, *self.bundle.get("patch_size"))  # the sliding window's input (roi_size)
        with torch_threads(1):  # small layers and maps built in one thread, as in predict
            self.network, self.checkpoint_sha256 = load(
                lambda: self.bundle.get("network_def"), self.checkpoint, window, label=f"{self.bundle.name} network",
                runtime=runtime, device=self.device, state_key="model", threads=network_threads())
            # As MONAI Label's BundleInferTask: the caller supplies the pixels, nothing is written.
            pre = self.bundle.get("preprocessing").transforms
            post = self.bundle.get("postprocessing").transforms
            self._inferer = self.bundle.get("inferer")
        self._pre = Compose([t for t in pre if not isinstance(t, LoadImaged)])
        self._post = Compose([t for t in post if not isinstance(t, SaveImaged)])
        self.plausibility = quality.load(self.bundle.root)  # None for a bundle trained before quality control
        self._beside_others = False
        self._parts_pool = None  # threads for the network's calls in parts, made at the first such call

    #: How many images a cohort loop predicts at once (``score_cli.score_studies``, inside
    #: :meth:`beside_other_images`). Two for either runtime on 2 cores: ONNX Runtime 16.6 against 27.6 ms an image
    #: (one at a time, its session in both cores), eager PyTorch 25.9 against 32.2 ms (docs/benchmarks.md).
    images_at_once = 2

    @contextlib.contextmanager
    def beside_other_images(self):
        """While another image is predicted beside this one (``score_cli.score_studies``): each image's windows in
        one network call, the other image's call the second at once. torch's intra-op threads, a process-wide
        setting, are fixed for the duration so that neither image changes them under the other: half the cores for
        eager PyTorch on the CPU (``prefetch.network_threads``: each of the two calls runs in as many), else one
        (ONNX Runtime's session has its own threads; torch then runs only the small work around the network)."""
        with torch_threads(network_threads() if self.device.type == "cpu" and not self._onnxruntime else 1):
            self._beside_others = True
            try:
                yield
            finally:
                self._beside_others = False

    @property
    def _onnxruntime(self) -> bool:
        from RheumImagingLib.onnx_network import OnnxRuntimeNetwork

        network = self.network.running() if isinstance(self.network, OnnxRuntimeNetwork) else self.network
        return isinstance(network, OnnxRuntimeNetwork)

    def network_input(self, pixels):
        """The bundle's declared preprocessing (loader aside) of a rows x columns image: the (1, x, y) tensor the
        network sees, identical to what training feeds it for the same file (contract C)."""
        import torch
        from monai.data import MetaTensor

        array = np.asarray(pixels, dtype=np.float32)
        if array.ndim != 2 or min(array.shape) < 2:
            raise ValueError(f"predict expects one 2-D grayscale image, got shape {array.shape}")
        if not np.isfinite(array).all():
            raise ValueError("predict expects finite pixel values")
        # The bundle works in MONAI's x-first convention (axis 0 lateral x, axis 1 depth y).
        return self._pre({"image": MetaTensor(torch.from_numpy(np.ascontiguousarray(array.T)))})["image"]

    def predict(self, pixels) -> np.ndarray:
        """Label map (uint8, same shape as ``pixels``): 0 background, 1 epithelium, 2 submucosa, 3 parenchyma.

        ``pixels`` is a rows x columns array (depth down the rows), any intensity range.
        """
        import torch

        image = self.network_input(pixels)
        threads = torch.get_num_threads()
        around = threads if self._beside_others else 1  # fixed while another image is predicted beside this one

        def network(windows):  # eager PyTorch in torch's threads as the caller set them; ONNX Runtime has its own
            with torch_threads(threads):
                return self._forward(windows)

        # The work around the network (window blending, labels) in one thread: each of its small torch operations
        # otherwise waits for torch's other threads, which on a busy machine cost more than the operation (shared
        # 2-core machine, one 256 x 256 image: window inference 294 ms against 87 ms with the same ONNX Runtime
        # network inside, post-processing 59 ms against 13 ms).
        with torch.no_grad(), torch_threads(around):  # a plain tensor: no MetaTensor bookkeeping per window
            logits = self._inferer(image.as_tensor()[None].to(self.device), network)
            labels = np.asarray(self._post({"image": image, "pred": logits[0].cpu()})["pred"])  # (x, y) uint8
        return np.ascontiguousarray(labels.T)

    def _forward(self, windows):
        """The network on a batch of windows: with ONNX Runtime and no other image beside, in parts run at once, as
        many as the session's threads fit in the cores (two: the session has half)."""
        import torch

        parts = 1 if self._beside_others else min(len(windows), cores() // network_threads())
        if parts < 2 or not self._onnxruntime:
            return self.network(windows)
        if self._parts_pool is None:
            self._parts_pool = ThreadPoolExecutor(max_workers=parts - 1, thread_name_prefix="network-part")
        first, *others = torch.tensor_split(windows, parts)
        others = [self._parts_pool.submit(self.network, part) for part in others]
        return torch.cat([self.network(first), *(part.result() for part in others)])

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


def label_map(masks: dict[str, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    """One uint8 label map (rows, cols) from named masks, values as ``anatomy.US_LABELS`` (a focus, 4, is
    painted last: it lies inside the parenchyma, and the bundle counts it as parenchyma)."""
    labels = np.zeros(shape, dtype=np.uint8)
    for value, name in sorted(US_LABELS.items()):
        if name in masks:
            labels[masks[name]] = value
    return labels


def training_pairs(cohort_csv: str | Path, out_dir: str | Path) -> dict[str, list[dict]]:
    """Per patient, the annotated images of a cohort.csv as bundle training pairs.

    Each ``<site>_image`` is decoded once by :func:`RheumImagingLib.annotations.prepare_image` (the reader
    scoring uses) into ``<out_dir>/prepared/<sha256>.npy``; its ``<site>_annotation`` (a Slicer segmentation by
    segment name, or a labelmap by value) becomes ``<out_dir>/labels/<sha256>.npy`` on the same (rows, cols)
    grid. Images without annotation are left out (scored only). Items carry ``site`` and the spacing for the
    plausibility model (:mod:`SjogrenUSLib.quality`)."""
    cohort_csv, out_dir = Path(cohort_csv), Path(out_dir)
    rows = read_cohort(cohort_csv, ("patient_id",), IMAGE_COLUMNS)
    (out_dir / "labels").mkdir(parents=True, exist_ok=True)
    pairs: dict[str, list[dict]] = {}
    for index, row in enumerate(rows):
        pid = (row.get("patient_id") or "").strip()
        if not pid:
            raise InputError(cohort_csv, f"row {index + 1}: empty patient_id")
        for site in SITES:
            image = row_file(cohort_csv, index, row, image_column(site))
            annotations = annotation_paths(cohort_csv, index, row, annotation_column(site))
            if image is None and annotations:
                raise InputError(cohort_csv, f"row {index + 1} ({pid}): {annotation_column(site)} without "
                                             f"{image_column(site)}")
            if image is None or not annotations:
                continue
            if len(annotations) > 1:
                raise InputError(annotations[1], f"row {index + 1}, column {annotation_column(site)}: one "
                                                 "segmentation or labelmap per image")
            prepared, geometry = prepare_image(image, out_dir / "prepared", row_spacing(row, cohort_csv, index))
            masks = read_masks(annotations[0], geometry, US_SEGMENTS)
            label = out_dir / "labels" / prepared.name
            np.save(label, label_map(masks, geometry.shape))
            pairs.setdefault(pid, []).append({"image": prepared, "label": label, "patient_id": pid, "site": site,
                                              "spacing_mm": list(geometry.spacing_mm),
                                              "spacing_source": geometry.spacing_source})
    if not pairs:
        raise InputError(cohort_csv, "no annotated image: training needs <site>_annotation cells "
                                     "(a segmentation or labelmap per image)")
    return pairs


def datalist_arrays(datalist: Path, section: str = "training", key: str = "label"):
    """(array, site, spacing in mm or None) of a datalist section's items, the array being the item's ``key``
    (``label`` or ``image``), for the plausibility model."""
    for item in json.loads(Path(datalist).read_text())[section]:
        calibrated = item.get("spacing_source") != SPACING_NONE
        yield np.load(Path(datalist).parent / item[key]), item["site"], item["spacing_mm"] if calibrated else None


def build_datalist(cohort_csv: str | Path, out_json: str | Path, val_fraction: float = 0.2, seed: int = 0,
                   overwrite: bool = False) -> Path:
    """Write the bundle's datalist (MONAI decathlon format) from a cohort.csv (:func:`training_pairs`; the
    prepared images and label maps go beside ``out_json``).

    Patients, not images, are split: a patient's images go together to ``training`` or ``validation``.
    ``val_fraction=1`` puts the whole cohort in ``validation`` (a held-out set for ``evaluate.json``).
    """
    from RheumImagingLib.training_setup import held_out_patients

    cohort_csv, out_json = Path(cohort_csv), Path(out_json)
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError("val_fraction must lie in [0, 1]")
    if out_json.exists() and not overwrite:
        raise InputError(out_json, "already exists; choose another path")
    pairs = training_pairs(cohort_csv, out_json.parent)
    for items in pairs.values():
        for item in items:
            for key in ("image", "label"):
                item[key] = _relative(item[key], out_json.parent)
    patients = sorted(pairs)
    val_ids = held_out_patients(patients, val_fraction, seed)
    datalist = {
        "description": f"built from {cohort_csv.resolve()} (seed {seed}, val_fraction {val_fraction}); "
                       "split by patient",
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
    ``models/model.pt`` (best validation mean Dice), ``models/model.onnx`` (its graph, so that scoring
    exports nothing: :func:`store_graph`), ``models/plausibility.json`` (what the training label maps and the
    network's predictions on the validation images look like, :mod:`.quality`), its ``datalist.json``,
    ``models/training.json`` and ``training.log`` (the full log, every iteration); ``progress(stage, fraction)``
    hears about every iteration.

    ``config`` is an override config of the bundle (``"demo"``: few epochs on this CPU), or None for
    the full ``train.json`` recipe. The source bundle is never modified.
    """
    from RheumImagingLib.training_setup import new_training_copy, record_training

    started = time.perf_counter()
    out_dir = new_training_copy(bundle_dir, out_dir, config=config, overrides=overrides)
    datalist = build_datalist(cohort_csv, out_dir / "datalist.json", val_fraction=val_fraction, seed=seed)
    bundle = Bundle(out_dir, "train", overrides={"datalist": str(datalist.resolve())})
    with log_file(out_dir / "training.log"):
        bundle.train("segmentation", progress)
    checkpoint = out_dir / "models" / "model.pt"
    if not checkpoint.is_file():
        raise RuntimeError(f"{out_dir}: training wrote no models/model.pt (see training.log)")
    store_graph(out_dir, checkpoint)
    held_out = quality.predictions(USSegmenter(out_dir), datalist_arrays(datalist, "validation", "image"))
    quality.write(quality.fit(datalist_arrays(datalist), bundle.version, held_out), out_dir)
    record_training(out_dir, started, source=Path(bundle_dir).resolve(), config=config, overrides=overrides or {},
                    cohort=Path(cohort_csv).resolve(), seed=seed, val_fraction=val_fraction,
                    checkpoint_sha256=bundle.provenance(checkpoint)["checkpoint_sha256"])
    return out_dir


def store_graph(bundle_dir: str | Path, checkpoint: str | Path) -> Path | None:
    """The ONNX graph of ``checkpoint`` beside it (``RheumImagingLib.runtime.store``), at the inference window, as
    :class:`USSegmenter` runs it; None (and a warning: scoring then exports once into its cache) when the export
    fails, so that a finished training is never lost to it."""
    from RheumImagingLib.runtime import store_or_warn

    bundle = Bundle(bundle_dir, "inference")
    network = bundle.get("network_def")
    key = load_checkpoint(network, checkpoint, key="model")
    return store_or_warn(single_slope_prelu_as_leaky_relu(network), (1, *bundle.get("patch_size")),
                         checkpoint=checkpoint, key=key, what=str(checkpoint))


def single_slope_prelu_as_leaky_relu(network):
    """``network`` with each PReLU of one learnt slope replaced by the LeakyReLU of that slope: the same function
    (x where x >= 0, else slope * x; equal outputs in eager PyTorch), exported as ONNX's LeakyRelu, which ONNX
    Runtime runs faster than PRelu (the UNet's 12 PReLUs took 4.5 of its 26 ms per 25 windows of 64 px)."""
    import torch

    for module in list(network.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, torch.nn.PReLU) and child.weight.numel() == 1:
                setattr(module, name, torch.nn.LeakyReLU(float(child.weight.detach())))
    return network
