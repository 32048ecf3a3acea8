"""Quality control of a radiograph's metacarpal contours: say when the contour model cannot read an image instead
of scoring it (as BoneXpert rejects bones its models cannot explain).

The checks compare the predicted contours with the training contours of the trained bundle, through the shape
model fitted when the bundle was trained (``models/shape_model.json``, the bundle's ``scripts/shape_model.py``):
- ``contour implausible for MCk``: the bone's outline is unlike every training outline;
- ``not a full PA hand``: the three bones' layout (order, spacing, relative size, tilt) is unlike training.
How the limits were chosen and what they flag is in the bundle README ("Quality control").
"""

from __future__ import annotations

from pathlib import Path

from RheumImagingLib.bundle import bundle_imports

SHAPE_MODEL = Path("models") / "shape_model.json"
NOT_A_HAND = "not a full PA hand"
NO_SHAPE_MODEL = "contours not checked (the contour bundle has no shape model; retrain it)"


def implausible_contour(bone: str) -> str:
    return f"contour implausible for {bone}"


def write_shape_model(bundle_dir, images) -> Path:
    """Fit the shape model on the contours the freshly trained bundle draws on its training images (2-D arrays in
    the trained convention: right hands, fingers up) and store it in the bundle."""
    from RheumImagingLib.errors import InputError

    from .contour import MetacarpalContourer

    bundle_dir = Path(bundle_dir)
    contourer = MetacarpalContourer(bundle_dir)
    contours, missed = [], 0
    for pixels in images:
        try:
            contours.append({bone: c["control_points"] for bone, c in contourer.predict(pixels).items()})
        except InputError:  # the localiser missed a bone: no contour to learn from
            missed += 1
    path = bundle_dir / SHAPE_MODEL
    with bundle_imports(bundle_dir):
        from scripts import shape_model

        try:
            models = shape_model.fit_hand_models(contours)
        except ValueError as exc:
            raise InputError(bundle_dir, f"no shape model for quality control: {exc}") from None
        shape_model.save(models, path, fitted_on=f"the network's contours on {len(contours)} training images",
                         images_without_contours=missed)
    return path


def reasons_per_bone(reasons, bones) -> dict[str, list[str]]:
    """Each bone's share of an image's reasons: all but those naming another bone."""
    return {bone: [r for r in reasons if not any(other in r for other in bones if other != bone)] for bone in bones}


class ContourQuality:
    """The trained bundle's shape model, loaded once; :meth:`reasons` judges one image's contours."""

    def __init__(self, bundle_dir):
        self.bundle_dir = Path(bundle_dir)
        path = self.bundle_dir / SHAPE_MODEL
        with bundle_imports(self.bundle_dir):
            from scripts import shape_model

            self._distances = shape_model.distances
            self._layout = shape_model.LAYOUT
            self.models = shape_model.load(path) if path.is_file() else None

    def distances(self, control_points: dict) -> dict[str, float]:
        """bone (and ``layout``) -> distance to the training shapes (control points in the trained convention)."""
        return self._distances(self.models, control_points)

    def limits(self) -> dict[str, float]:
        return {name: model.limit for name, model in self.models.items()}

    def reasons(self, control_points: dict) -> list[str]:
        """What is wrong with these contours (empty when nothing is)."""
        if self.models is None:
            return [NO_SHAPE_MODEL]
        distances, limits = self.distances(control_points), self.limits()
        reasons = [implausible_contour(bone) for bone in control_points if distances[bone] > limits[bone]]
        if distances[self._layout] > limits[self._layout]:
            reasons.append(NOT_A_HAND)
        return reasons
