"""Quality control of a radiograph's metacarpal contours: say when the contour model cannot read an image instead
of scoring it (as BoneXpert rejects bones its models cannot explain).

The checks compare the predicted contours with the training contours of the trained bundle, through the shape
model fitted when the bundle was trained (``models/shape_model.json``, the bundle's ``scripts/shape_model.py``):
- ``contour implausible for MCk``: the bone's outline is unlike every training outline;
- ``not a full PA hand``: the three bones' layout (order, spacing, relative size, tilt) is unlike training;
- ``localiser not confident``: for some bone, the localiser's mean softmax probability over the bone's region is
  lower than ``CONFIDENCE_MARGIN`` times the held-out images' 95th percentile of 1 - that probability allows
  (``models/localiser_confidence.json``, written with the shape model).
The limits are learnt out of sample, on the held-out patients training keeps out of the networks' training: the
networks read their own training images better than new ones. How the margins were chosen and what they flag is in
the bundle README ("Quality control").
"""

from __future__ import annotations

from pathlib import Path

from RheumImagingLib.bundle import bundle_imports

SHAPE_MODEL = Path("models") / "shape_model.json"
CONFIDENCE = Path("models") / "localiser_confidence.json"
CONFIDENCE_MARGIN = 6.0  # calibration: bundle README, "Quality control"
NOT_A_HAND = "not a full PA hand"
NOT_CONFIDENT = "localiser not confident"
NO_SHAPE_MODEL = "contours not checked (the contour bundle has no shape model; retrain it)"
NO_LIMITS = ("contours not checked (no held-out image was contoured when the bundle was trained, so its shape model "
             "has no limits; retrain with more annotated patients)")


def implausible_contour(bone: str) -> str:
    return f"contour implausible for {bone}"


def write_shape_model(bundle_dir, training_images, held_out_images) -> Path:
    """Fit the shape model on the contours the freshly trained bundle draws on its training images, learn its limits
    and the localiser's confidence limit from the held-out images (not trained on), and store both in the bundle.
    Images: 2-D arrays in the trained convention (right hands, fingers up)."""
    import json

    import numpy as np

    from RheumImagingLib.errors import InputError

    from .contour import MetacarpalContourer

    bundle_dir = Path(bundle_dir)
    contourer = MetacarpalContourer(bundle_dir)
    quality = ContourQuality(bundle_dir, contourer)

    def read(images):
        contours, doubt, missed = [], [], 0
        for pixels in images:
            try:
                found, logits = contourer.predict_with_logits(pixels)
            except InputError:  # the localiser missed a bone: no contour to learn from
                missed += 1
                continue
            contours.append({bone: c["control_points"] for bone, c in found.items()})
            doubt.append(1.0 - quality.localiser_confidence(pixels, logits))
        return contours, doubt, missed

    (contours, _, missed), (held_out, doubt, held_out_missed) = read(training_images), read(held_out_images)
    path = bundle_dir / SHAPE_MODEL
    with bundle_imports(bundle_dir):
        from scripts import shape_model

        try:
            models = shape_model.fit_hand_models(contours, held_out)
        except ValueError as exc:
            raise InputError(bundle_dir, f"no shape model for quality control: {exc}") from None
        shape_model.save(models, path, fitted_on=f"the network's contours on {len(contours)} training images",
                         images_without_contours=missed,
                         limits_from=f"the network's contours on {len(held_out)} held-out images",
                         held_out_images_without_contours=held_out_missed)
    limit = 1.0 - CONFIDENCE_MARGIN * float(np.percentile(doubt, 95)) if doubt else None
    (bundle_dir / CONFIDENCE).write_text(json.dumps({"held_out_1_minus_confidence": np.round(doubt, 6).tolist(),
                                                     "margin": CONFIDENCE_MARGIN, "limit": limit}, indent=1) + "\n")
    return path


def reasons_per_bone(reasons, bones) -> dict[str, list[str]]:
    """Each bone's share of an image's reasons: all but those naming another bone."""
    return {bone: [r for r in reasons if not any(other in r for other in bones if other != bone)] for bone in bones}


class ContourQuality:
    """The trained bundle's shape model and localiser confidence limit, loaded once; :meth:`reasons` judges one
    image's contours. ``contourer``: the bundle's loaded :class:`MetacarpalContourer` (its localiser is reused;
    without it, no confidence check)."""

    def __init__(self, bundle_dir, contourer=None):
        import json

        self.bundle_dir, self.contourer = Path(bundle_dir), contourer
        path = self.bundle_dir / SHAPE_MODEL
        with bundle_imports(self.bundle_dir):
            from scripts import shape_model

            self._distances = shape_model.distances
            self._layout = shape_model.LAYOUT
            self.models = shape_model.load(path) if path.is_file() else None
        confidence = self.bundle_dir / CONFIDENCE
        self.confidence_limit = json.loads(confidence.read_text())["limit"] if confidence.is_file() else None

    def distances(self, control_points: dict) -> dict[str, float]:
        """bone (and ``layout``) -> distance to the training shapes (control points in the trained convention)."""
        return self._distances(self.models, control_points)

    def limits(self) -> dict[str, float]:
        return {name: model.limit for name, model in self.models.items()}

    def localiser_confidence(self, pixels, logits=None) -> float:
        """The lowest, over the bones, mean softmax probability of the bone's class over its largest region in the
        localiser's output (the region its box comes from), for an image in the trained convention. ``logits``:
        the localiser's output for ``pixels`` when the contours were drawn from it (it then does not run again)."""
        import numpy as np
        import torch
        from scipy import ndimage

        from RheumImagingLib.threads import torch_threads

        with torch.no_grad():
            if logits is None:
                predictor = self.contourer.predictor
                small = torch.as_tensor(self.contourer.network_input(pixels)["image"])  # the declared preprocessing
                logits = predictor.inferer(small[None].to(predictor.device), predictor.localiser)[0]
            with torch_threads(1):  # an image-sized operation: see RheumImagingLib.threads
                probabilities = torch.softmax(torch.as_tensor(logits), 0).cpu().numpy()
        classes = probabilities.argmax(0)
        lowest = 1.0
        for label in range(1, probabilities.shape[0]):
            regions, n = ndimage.label(classes == label)
            if n == 0:
                return 0.0
            largest = regions == 1 + int(np.argmax(np.bincount(regions.reshape(-1))[1:]))
            lowest = min(lowest, float(probabilities[label][largest].mean()))
        return lowest

    def reasons(self, control_points: dict, pixels=None, logits=None) -> list[str]:
        """What is wrong with these contours (empty when nothing is); ``pixels``: the image in the trained
        convention, for the localiser's confidence (``logits``: the localiser's output the contours came from)."""
        if self.models is None:
            return [NO_SHAPE_MODEL]
        if any(model.limit is None for model in self.models.values()):
            return [NO_LIMITS]
        distances, limits = self.distances(control_points), self.limits()
        reasons = [implausible_contour(bone) for bone in control_points if distances[bone] > limits[bone]]
        if distances[self._layout] > limits[self._layout]:
            reasons.append(NOT_A_HAND)
        if pixels is not None and self.contourer is not None and self.confidence_limit is not None:
            if self.localiser_confidence(pixels, logits) < self.confidence_limit:
                reasons.append(NOT_CONFIDENT)
        return reasons
