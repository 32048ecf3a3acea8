"""Two-stage inference on the declared preprocessing's output: localiser label map (declared postprocessing) ->
one box per bone -> Curve-GCN on the bone crop -> 40 control points in full-image pixels from the distal tip,
the sampled spline and a mask."""

from __future__ import annotations

import json
import os

import numpy as np
import torch

from .contours import from_distal_tip
from .geometry import BONES, crop_frame, crop_to_pixels, cut_crops, label_box, polygon_mask
from .spline import sample_closed_spline


class ContourPredictor:
    """``predictor(data)`` with ``data`` as the declared preprocessing leaves it: ``image`` (1, h, w) at the
    localiser's size and ``image_full`` (1, H, W), both scaled to [0, 1]."""

    def __init__(
        self, localiser, curvegcn, inferer, postprocessing, crop_size: int, contour_samples: int = 400, device="cpu"
    ):
        self.localiser, self.curvegcn = localiser.eval(), curvegcn.eval()
        self.inferer, self.postprocessing = inferer, postprocessing
        self.crop_size, self.contour_samples = int(crop_size), int(contour_samples)
        self.device = torch.device(device)

    @torch.no_grad()
    def localise(self, data: dict) -> torch.Tensor:
        """The localiser's logits (classes, h, w) for ``data["image"]``."""
        small = torch.as_tensor(data["image"])
        return self.inferer(small[None].to(self.device), self.localiser)[0]

    @torch.no_grad()
    def boxes(self, data: dict, logits=None) -> dict:
        """bone -> (x0, y0, x1, y1) in full-image pixels (None where the localiser finds nothing); ``logits``: the
        localiser's output for ``data`` when the caller has it (:meth:`localise`), else the localiser runs."""
        logits = self.localise(data) if logits is None else logits
        classes = np.asarray(self.postprocessing({"pred": logits.cpu()})["pred"])[0]
        rows, cols = data["image_full"].shape[-2:]
        fy, fx = rows / classes.shape[0], cols / classes.shape[1]
        out = {}
        for label, bone in enumerate(BONES, start=1):
            box = label_box(classes == label)
            out[bone] = None if box is None else box * [fx, fy, fx, fy] - 0.5
        return out

    @torch.no_grad()
    def __call__(self, data: dict, logits=None, boxes=None, outlines: bool = True) -> dict:
        """bone -> its contour; ``boxes``: :meth:`boxes` of ``data`` when the caller has them (else they are found
        from ``logits``, or from the localiser run here); ``outlines=False``: the control points and box only, for a
        caller that needs neither the sampled spline nor the mask (they take a third of the work besides the
        networks here)."""
        image = np.asarray(data["image_full"], dtype=np.float32)[0]
        boxes = self.boxes(data, logits) if boxes is None else boxes
        missing = [b for b, box in boxes.items() if box is None]
        if missing:
            raise ValueError(f"the localiser found no {', '.join(missing)}")
        frames = {b: crop_frame(box) for b, box in boxes.items()}
        crops = cut_crops(image, [frames[b] for b in BONES], self.crop_size)[:, None]
        steps = self.curvegcn(torch.from_numpy(crops).to(self.device)).cpu().numpy()
        points = np.stack([from_distal_tip(crop_to_pixels(steps[i, -1], frames[b])) for i, b in enumerate(BONES)])
        result = {bone: {"control_points": points[i], "box": boxes[bone]} for i, bone in enumerate(BONES)}
        if outlines:
            contours = sample_closed_spline(points, self.contour_samples)  # the three bones in one call
            for i, bone in enumerate(BONES):
                result[bone].update(contour=contours[i], mask=polygon_mask(contours[i], image.shape))
        return result


def write_contours(predictor: ContourPredictor, preprocessing, images, output_dir) -> list[str]:
    """Contour each image file (``.png`` bone bright, or ``.npy``) and write ``<stem>_contours.json`` with the
    40 control points per bone (the format ``scripts.datalist`` reads back for training); returns the paths."""
    os.makedirs(output_dir, exist_ok=True)
    written = []
    for path in images:
        result = predictor(preprocessing({"image": path}))
        out = os.path.join(output_dir, os.path.splitext(os.path.basename(path))[0] + "_contours.json")
        with open(out, "w") as fh:
            json.dump({b: {"control_points": r["control_points"].round(2).tolist()} for b, r in result.items()}, fh)
        written.append(out)
    return written
