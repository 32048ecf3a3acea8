"""Datalists for the ra_bone_texture bundle: one item per annotated bone, patient-grouped stratified folds.

One image path (the README's contract): each cohort image is decoded by ``read_image`` and cached once as
float32 ``.npy`` (``annotations.prepare_image``); the bundle loads that array and runs its declared
preprocessing, exactly what scoring runs on the array ``read_image`` gives. Outlines come from the cohort's
``annotation`` column (Slicer closed curves ``MC2``-``MC4`` or a segmentation / labelmap), drawn in any
number of points, from any start, either way round: they are brought into the form the contour model
predicts (40 points from the distal tip, counter-clockwise in the trained convention of a right hand with
the fingers up, mapped back into the image as scoring maps its predictions back).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from RheumImagingLib.anatomy import BONES
from RheumImagingLib.cohort_folder import annotation_paths, read_cohort, row_file, row_spacing
from RheumImagingLib.errors import InputError


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


def _to_convention(points_xy, orientation, shape) -> np.ndarray:
    """Inverse of ``orientation.points_from_convention`` (an affine map of the pixel grid)."""
    from .orientation import points_from_convention

    origin, ex, ey = points_from_convention([[0, 0], [1, 0], [0, 1]], orientation, shape)
    basis = np.stack([ex - origin, ey - origin], axis=1)
    return np.linalg.solve(basis, (np.asarray(points_xy, dtype=float) - origin).T).T


def control_points(outline_xy, orientation, shape) -> np.ndarray:
    """(40, 2) pixel (x, y): the outline as the contour model's control points, in the image's pixels."""
    from .contour import network_points
    from .orientation import points_from_convention

    upright = network_points(_to_convention(outline_xy, orientation, shape))
    return points_from_convention(upright, orientation, shape)


def build_datalist(cohort_csv, out_json, *, n_folds: int = 5, seed: int = 0, contours: dict | None = None,
                   prepared_dir=None) -> Path:
    """Write ``{"training": [{image, contour, bone, patient_id, label, fold, spacing}, ...]}`` for the
    annotated rows of ``cohort_csv`` (rows with an empty ``annotation`` are only scored, not trained on).

    ``image``: the prepared ``.npy`` in ``prepared_dir`` (default: ``prepared/`` beside ``out_json``);
    ``spacing``: the image's (row, col) mm from its calibration or the row's ``pixel_spacing_mm``
    (user-given), None when neither (the bundle then cuts at its ``fallback_spacing_mm``), as scoring does.
    ``contours`` (patient_id -> {bone: (N, 2) xy}, e.g. predicted) replaces the annotation column.
    """
    from RheumImagingLib.annotations import SPACING_NONE, prepare_image
    from RheumImagingLib.imageio import read_image

    from .contour import read_outlines
    from .orientation import detect

    cohort_csv, out_json = Path(cohort_csv), Path(out_json)
    prepared_dir = Path(prepared_dir) if prepared_dir else out_json.parent / "prepared"
    rows = read_cohort(cohort_csv, ("patient_id", "image", "label") + (() if contours else ("annotation",)))
    annotated = [(i, r) for i, r in enumerate(rows) if contours is not None or (r.get("annotation") or "").strip()]
    labels = {r["patient_id"]: int(r["label"]) for _, r in annotated}
    if len(set(labels.values())) < 2 or min(list(labels.values()).count(v) for v in (0, 1)) < n_folds:
        raise InputError(cohort_csv, f"needs at least {n_folds} annotated patients of each label for {n_folds} folds")
    folds = assign_folds(list(labels), list(labels.values()), n_folds, seed)
    items = []
    for i, r in annotated:
        pid = r["patient_id"]
        source = row_file(cohort_csv, i, r, "image")
        if source is None:
            raise InputError(cohort_csv, f"row {i + 1} ({pid}): empty image cell")
        prepared, geometry = prepare_image(source, prepared_dir, row_spacing(r, cohort_csv, i))
        if contours is not None:
            bones = {b: np.asarray(c, dtype=float) for b, c in contours[pid].items()}
        else:
            image = read_image(source)
            orientation = detect(image.pixels, image.metadata)
            outlines = read_outlines(annotation_paths(cohort_csv, i, r, "annotation"), geometry)
            bones = {b: control_points(xy, orientation, geometry.shape) for b, xy in outlines.items()}
        spacing = None if geometry.spacing_source == SPACING_NONE else [float(v) for v in geometry.spacing_mm]
        for bone in BONES:
            if bone in bones:
                items.append({"image": str(prepared.resolve()), "contour": np.asarray(bones[bone]).tolist(),
                              "bone": bone, "patient_id": pid, "label": labels[pid], "fold": folds[pid],
                              "spacing": spacing})
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps({"training": items}))
    return out_json
