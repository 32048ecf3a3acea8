"""Held-out evaluation: per bone Dice of the predicted mask against the truth outline's mask, and the distance
(pixels) of control point 0 to the true distal tip (point 0 of the truth in the network's convention)."""

from __future__ import annotations

import csv
import json
import os

import numpy as np

from .contours import to_network_points
from .geometry import BONES, polygon_mask


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * np.logical_and(a, b).sum() / max(int(a.sum() + b.sum()), 1))


def evaluate(predictor, preprocessing, items, output_dir) -> dict:
    """Writes ``metrics.json`` (means) and ``per_bone.csv`` under ``output_dir``; returns the means.
    ``items``: datalist items (``image`` and ``contours``), as ``scripts.datalist`` reads them."""
    rows = []
    for item in items:
        data = preprocessing({"image": item["image"]})
        shape = data["image_full"].shape[-2:]
        result = predictor(data)
        for bone in BONES:
            truth = np.asarray(item["contours"][bone], float)
            pred = result[bone]
            rows.append(
                {
                    "image": os.path.basename(item["image"]),
                    "bone": bone,
                    "dice": dice(pred["mask"], polygon_mask(truth, shape)),
                    "tip_distance_px": float(np.linalg.norm(pred["control_points"][0] - to_network_points(truth)[0])),
                }
            )
    metrics = {
        "mean_dice": float(np.mean([r["dice"] for r in rows])),
        "min_dice": float(np.min([r["dice"] for r in rows])),
        "tip_distance_px": float(np.mean([r["tip_distance_px"] for r in rows])),
        "max_tip_distance_px": float(np.max([r["tip_distance_px"] for r in rows])),
        "n_bones": len(rows),
    }
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "per_bone.csv"), "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(output_dir, "metrics.json"), "w") as fh:
        json.dump(metrics, fh, indent=4)
    return metrics
