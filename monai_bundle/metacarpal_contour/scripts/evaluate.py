"""Held-out evaluation: per bone Dice of the predicted mask against the truth outline's mask,
and the distance (pixels) of control point 0 to the true distal tip (truth point 0)."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from .geometry import BONES, polygon_mask


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(int(a.sum() + b.sum()), 1))


def evaluate(predictor, cohort_csv, output_dir) -> dict:
    """Writes ``metrics.json`` (means) and ``per_bone.csv`` under ``output_dir``; returns the means."""
    cohort_csv = Path(cohort_csv)
    rows = []
    with open(cohort_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            path = (cohort_csv.parent / row["image"]).with_suffix("")
            truth = json.loads(path.with_suffix(".json").read_text())
            pixels = np.asarray(Image.open(path.with_suffix(".png")), dtype=np.float32)
            result = predictor(pixels)
            for bone in BONES:
                true_pts = np.asarray(truth["bones"][bone]["contour"], float)
                pred = result[bone]
                rows.append({"image": path.name, "bone": bone,
                             "dice": dice(pred["mask"], polygon_mask(true_pts, pixels.shape)),
                             "tip_distance_px": float(np.linalg.norm(pred["control_points"][0] - true_pts[0]))})
    metrics = {"mean_dice": float(np.mean([r["dice"] for r in rows])),
               "min_dice": float(np.min([r["dice"] for r in rows])),
               "tip_distance_px": float(np.mean([r["tip_distance_px"] for r in rows])),
               "max_tip_distance_px": float(np.max([r["tip_distance_px"] for r in rows])),
               "n_bones": len(rows)}
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "per_bone.csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(output_dir, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=4)
    return metrics
