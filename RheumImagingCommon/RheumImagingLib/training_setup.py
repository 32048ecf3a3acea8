"""The one training set-up of the extension's trainers (contour, texture, ultrasound segmentation).

A trained bundle is a copy of the source bundle in a new folder: never the source itself, never over a user's
files. The override config (``demo``) and any overrides are written into the copy's own configs, so the trained
bundle's ``inference.json`` carries the sizes its networks were trained with and runs as it is, with MONAI alone.
``models/training.json`` records what it was trained with.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from .bundle import sha256_of
from .errors import InputError

TRAINING_RECORD = Path("models") / "training.json"
# never copied from the source: weights, evaluation output, caches, another training's lists and logs
_NOT_COPIED = ("__pycache__", "models", "eval", "datalist.json", "training.log", "*.pt", "*.ts", "prepared", "labels")


def new_training_copy(source, out_dir, config: str | None = None, overrides: dict | None = None) -> Path:
    """Copy the bundle ``source`` to the new (or empty) folder ``out_dir`` without weights or results, with
    ``configs/<config>.json`` and ``overrides`` written into the copy's configs; returns ``out_dir``."""
    source, out_dir = Path(source), Path(out_dir)
    if not (source / "configs" / "train.json").is_file():
        raise InputError(source, "not a trainable bundle (configs/train.json is missing)")
    require_new_folder(out_dir)
    values = {}
    if config and config != "train":
        config_file = source / "configs" / f"{config}.json"
        if not config_file.is_file():
            raise InputError(config_file, "override config not found")
        values.update(json.loads(config_file.read_text()))
    values.update(overrides or {})
    shutil.copytree(source, out_dir, ignore=shutil.ignore_patterns(*_NOT_COPIED), dirs_exist_ok=True)
    (out_dir / "models").mkdir(exist_ok=True)
    write_into_configs(out_dir, values)
    return out_dir


def require_new_folder(out_dir) -> None:
    """Training writes only into a new or empty folder: nothing a user had there is overwritten."""
    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise InputError(out_dir, "output folder exists and is not empty (choose a new folder)")


def write_into_configs(bundle_dir, values: dict) -> None:
    """Set each ``key`` (``a#b#0`` ids as MONAI's parser takes them) in every config of the bundle that has it; a
    key no config has goes to the top of ``train.json``, so the copy's configs say everything it trained with."""
    configs = sorted(p for p in (Path(bundle_dir) / "configs").glob("*.json") if p.name != "metadata.json")
    contents = {p: json.loads(p.read_text()) for p in configs}
    for key, value in values.items():
        found = [_set(content, key.split("#"), value) for content in contents.values()]
        if not any(found):
            contents[Path(bundle_dir) / "configs" / "train.json"][key] = value
    for path, content in contents.items():
        path.write_text(json.dumps(content, indent=4) + "\n")


def _set(node, parts: list[str], value) -> bool:
    for i, part in enumerate(parts):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            part = int(part)
        elif not (isinstance(node, dict) and part in node):
            return False
        if i == len(parts) - 1:
            node[part] = value
            return True
        node = node[part]
    return False


def record_training(bundle_dir, started: float, **facts) -> Path:
    """Write ``models/training.json``: ``facts`` (source, config, overrides, cohort, ...), the wall time since
    ``started`` (``time.perf_counter()``) and the sha256 of every weights file the training left in ``models/``."""
    bundle_dir = Path(bundle_dir)
    weights = {p.name: sha256_of(p) for p in sorted((bundle_dir / "models").glob("*.pt"))}
    record = {**{k: str(v) if isinstance(v, Path) else v for k, v in facts.items()},
              "wall_s": round(time.perf_counter() - started, 1), "weights_sha256": weights}
    path = bundle_dir / TRAINING_RECORD
    path.write_text(json.dumps(record, indent=1))
    return path


def held_out_patients(patients, val_fraction: float, seed: int = 0) -> set:
    """The patients a trainer keeps out of training, for validation and to learn quality-control limits on images
    the network did not train on: ``round(val_fraction * n)`` of them by a seeded permutation of the sorted ids, at
    least one and never all when ``0 < val_fraction < 1`` and there are two or more; ``val_fraction=1``: all."""
    if not 0.0 <= val_fraction <= 1.0:
        raise ValueError("val_fraction must lie in [0, 1]")
    import numpy as np

    patients = sorted(set(patients))
    order = np.random.default_rng(seed).permutation(len(patients))
    n_val = int(round(val_fraction * len(patients)))
    if 0 < val_fraction < 1 and len(patients) > 1:
        n_val = min(max(n_val, 1), len(patients) - 1)
    return {patients[i] for i in order[:n_val]}
