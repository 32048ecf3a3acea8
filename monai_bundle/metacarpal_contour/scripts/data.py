"""Training samples from a cohort.csv whose images have a truth JSON beside them (as the
phantom writes): stage 1 gets the downsampled radiograph and three bone masks, stage 2 gets
one jittered crop per bone with its 40 truth points in crop coordinates."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .geometry import BONES, box_of, crop_frame, cut_crop, pixels_to_crop, polygon_mask, resize, scale_intensity


def load_cohort(cohort_csv) -> list[dict]:
    """[{"image": scaled float image, "contours": {bone: (40, 2) xy}}] for each row of the cohort."""
    cohort_csv = Path(cohort_csv)
    items = []
    with open(cohort_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            path = (cohort_csv.parent / row["image"]).with_suffix("")
            truth = json.loads(path.with_suffix(".json").read_text())
            pixels = np.asarray(Image.open(path.with_suffix(".png")), dtype=np.float32)
            items.append({"image": scale_intensity(pixels),
                          "contours": {b: np.asarray(truth["bones"][b]["contour"], float) for b in BONES}})
    return items


class LocaliserDataset(torch.utils.data.Dataset):
    """Stage 1: {"image": (1, H, W), "label": (4, H, W)} at the localiser's input size; label
    channels: background, MC2, MC3, MC4 (one class per pixel, so the bones compete for pixels)."""

    def __init__(self, cohort_csv, size):
        self.samples = []
        for item in load_cohort(cohort_csv):
            shape = item["image"].shape
            fy, fx = size[0] / shape[0], size[1] / shape[1]
            masks = [polygon_mask((c + 0.5) * [fx, fy] - 0.5, size) for c in item["contours"].values()]
            masks.insert(0, ~np.any(masks, axis=0))
            self.samples.append({"image": torch.from_numpy(resize(item["image"], size))[None],
                                 "label": torch.from_numpy(np.stack(masks).astype(np.float32))})

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        return self.samples[i]


class BoneCropDataset(torch.utils.data.Dataset):
    """Stage 2: {"image": (1, S, S) crop, "label": (40, 2) truth points in [0, 1] crop (x, y)}.

    Each access jitters the box (shift and scale, as the localiser's boxes vary), so the
    network learns to trace from imperfect boxes."""

    def __init__(self, cohort_csv, crop_size: int, jitter: float = 0.06, seed: int = 0):
        self.items = [(item["image"], c) for item in load_cohort(cohort_csv) for c in item["contours"].values()]
        self.crop_size, self.jitter = int(crop_size), float(jitter)
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        image, contour = self.items[i]
        x0, y0, x1, y1 = box_of(contour)
        w, h = x1 - x0, y1 - y0
        d = self.rng.uniform(-self.jitter, self.jitter, 4) * [w, h, w, h]
        frame = crop_frame([x0 + d[0], y0 + d[1], x1 + d[2], y1 + d[3]])
        crop = cut_crop(image, frame, self.crop_size)
        return {"image": torch.from_numpy(crop)[None],
                "label": torch.from_numpy(pixels_to_crop(contour, frame).astype(np.float32))}
