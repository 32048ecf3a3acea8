"""Datalists for the ra_bone_texture bundle: one item per bone, patient-grouped stratified folds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from RheumImagingLib.cohort_folder import read_cohort
from RheumImagingLib.errors import InputError

BONES = ("MC2", "MC3", "MC4")


def _training_image(cohort_dir: Path, image: str) -> Path:
    """The image MONAI reads in training: the phantom's PNG beside its DICOM (same pixels, bone bright)."""
    path = (cohort_dir / image).resolve()
    png = path.with_suffix(".png")
    if png.is_file():
        return png
    if path.suffix.lower() == ".png" and path.is_file():
        return path
    raise InputError(path, "no PNG beside this image (the bundle's training reads PNG radiographs, bone bright)")


def _spacing_mm(cohort_dir: Path, image: str) -> list[float] | None:
    """The cohort image's (row, col) pixel size in mm from its calibration; None when uncalibrated
    (the bundle then cuts at its ``fallback_spacing_mm``)."""
    from RheumImagingLib.imageio import read_image

    spacing = read_image(cohort_dir / image).spacing_mm
    return None if spacing is None else [float(v) for v in spacing]


def assign_folds(patient_ids, labels, n_folds: int = 5, seed: int = 0) -> dict:
    """patient_id -> fold, stratified by label (sklearn StratifiedGroupKFold, shuffled with ``seed``)."""
    from sklearn.model_selection import StratifiedGroupKFold

    pids = np.asarray(patient_ids)
    y = np.asarray(labels)
    splitter = StratifiedGroupKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = {}
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(pids)), y, groups=pids)):
        for pid in pids[test]:
            folds[str(pid)] = fold
    return folds


def build_datalist(cohort_csv, out_json, *, n_folds: int = 5, seed: int = 0, contours: dict | None = None) -> Path:
    """Write ``{"training": [{image, contour, bone, patient_id, label, fold, spacing}, ...]}``.

    ``spacing``: the (row, col) pixel size in mm of the cohort's image (its DICOM calibration;
    the training PNG has none), or None when it is uncalibrated.

    Contours come from the ground-truth JSON beside each image (``images/<pid>.json``) unless
    ``contours`` maps patient_id -> {bone: (N, 2) xy} (e.g. predicted contours).
    """
    cohort_csv = Path(cohort_csv)
    rows = read_cohort(cohort_csv, ("patient_id", "image", "label"))
    labels = {r["patient_id"]: int(r["label"]) for r in rows}
    if len(set(labels.values())) < 2 or min(list(labels.values()).count(v) for v in (0, 1)) < n_folds:
        raise InputError(cohort_csv, f"needs at least {n_folds} patients of each label for {n_folds} folds")
    folds = assign_folds(list(labels), list(labels.values()), n_folds, seed)
    items = []
    for r in rows:
        pid = r["patient_id"]
        if contours is not None:
            bones = {b: np.asarray(c).tolist() for b, c in contours[pid].items()}
        else:
            truth_path = (cohort_csv.parent / r["image"]).with_suffix(".json")
            if not truth_path.is_file():
                raise InputError(truth_path, "ground-truth contours not found (pass predicted contours instead)")
            bones = {b: v["contour"] for b, v in json.loads(truth_path.read_text())["bones"].items()}
        image = str(_training_image(cohort_csv.parent, r["image"]))
        spacing = _spacing_mm(cohort_csv.parent, r["image"])
        for bone in BONES:
            if bone in bones:
                items.append({"image": image, "contour": bones[bone], "bone": bone, "patient_id": pid,
                              "label": labels[pid], "fold": folds[pid], "spacing": spacing})
    out_json = Path(out_json)
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps({"training": items}))
    return out_json
