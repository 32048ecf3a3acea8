"""Statistical shape model of the training contours, to refuse contours unlike any the model was trained on.

A point distribution model (Cootes TF, Taylor CJ, Cooper DH, Graham J. Active shape models - their training and
application. Comput Vis Image Underst 1995;61(1):38-59) of the 40 control points the trained network draws on its
training images, aligned by generalised Procrustes analysis, with the principal modes keeping ``VARIANCE_KEPT`` of the
variance. A contour's distance to the model is the Mahalanobis distance in the kept modes plus the residual off them
divided by the mean variance of the dropped modes ("distance in and from feature space", Moghaddam B, Pentland A.
Probabilistic visual learning for object representation. IEEE TPAMI 1997;19(7):696-710, eq. 10). One model per bone
(shape only: position, size and rotation removed) and one of the three bones together ("layout": position and size
removed, rotation kept, so a hand tilted away from the trained pose or bones out of their order are far from it).

The network's contours, not the annotated ones, because the residual of annotated outlines is far smaller than the
network's point noise: fitted on annotations, every held-out phantom was refused (bundle README, "Quality control").
The training distances are leave-one-out (each training contour against the model fitted without it). The
plausibility limit is learnt out of sample: ``MARGIN`` times the ``PERCENTILE``-th percentile of the distances of the
network's contours on held-out images (patients kept out of the networks' training), because the network draws
the images it trained on better than new ones and a limit learnt on them refused 7.5 % of held-out phantoms
(README). ``MARGIN`` was chosen on held-out phantoms of other seeds (README). Without held-out contours a model has
no limit (``None``) and the extension does not judge contours with it. Stored as ``models/shape_model.json``.
"""

from __future__ import annotations

import json

import numpy as np

from .geometry import BONES

LAYOUT = "layout"
VARIANCE_KEPT = 0.95
PERCENTILE = 95.0
MARGIN = 8.0
MIN_TRAINING = 4


def _normalise(points: np.ndarray) -> np.ndarray:
    """Centred at the origin, centroid size 1 (the last two axes: points, xy)."""
    centred = points - points.mean(axis=-2, keepdims=True)
    return centred / np.maximum(np.linalg.norm(centred, axis=(-2, -1), keepdims=True), 1e-12)


def _align(points: np.ndarray, reference: np.ndarray, rotate: bool) -> np.ndarray:
    """``points`` (one shape or a stack) normalised and, if ``rotate``, turned onto the normalised ``reference``
    (orthogonal Procrustes without reflection: a mirrored contour is a different shape)."""
    shape = _normalise(np.asarray(points, dtype=float))
    if not rotate:
        return shape
    u, _, vt = np.linalg.svd(np.swapaxes(shape, -1, -2) @ reference)
    flip = np.ones(u.shape[:-1])
    flip[..., -1] = np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)
    return shape @ (u * flip[..., None, :] @ vt)


def _procrustes(shapes: np.ndarray, rotate: bool, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(mean, aligned shapes) by generalised Procrustes analysis (Gower 1975)."""
    mean = _normalise(shapes[0])
    for _ in range(iterations):
        aligned = _align(shapes, mean, rotate)
        new = _align(aligned.mean(axis=0), mean, rotate)
        if np.abs(new - mean).max() < 1e-10:
            break
        mean = new
    return mean, aligned


class ShapeModel:
    """One point set's model: ``distance(points)``, and the training distances it is judged against."""

    def __init__(
        self, mean, modes, variances, residual_variance, rotate, training_distances, held_out_distances=(), limit=None
    ):
        self.mean = np.asarray(mean, float)
        self.modes = np.asarray(modes, float).reshape(-1, self.mean.size)
        self.variances, self.residual_variance = np.asarray(variances, float), float(residual_variance)
        self.rotate, self.training_distances = bool(rotate), np.asarray(training_distances, float)
        self.held_out_distances, self.limit = np.asarray(held_out_distances, float), limit

    def calibrate(self, held_out_shapes) -> "ShapeModel":
        """Learn the limit from shapes the model and the network never saw: ``MARGIN`` times the ``PERCENTILE``-th
        percentile of their distances (no shapes: no limit)."""
        self.held_out_distances = np.array([self.distance(s) for s in held_out_shapes], dtype=float)
        found = self.held_out_distances.size > 0
        self.limit = MARGIN * float(np.percentile(self.held_out_distances, PERCENTILE)) if found else None
        return self

    @classmethod
    def fit(cls, shapes, rotate: bool = True) -> "ShapeModel":
        shapes = np.asarray(shapes, dtype=float)
        if len(shapes) < MIN_TRAINING:
            raise ValueError(f"a shape model needs at least {MIN_TRAINING} training contours, got {len(shapes)}")
        mean, aligned = _procrustes(shapes, rotate)
        model = cls._pca(mean, aligned, rotate)
        # leave-one-out in the tangent space of the full alignment (one shape moves the Procrustes mean little)
        loo = [cls._pca(mean, np.delete(aligned, i, axis=0), rotate).distance(shapes[i]) for i in range(len(shapes))]
        return cls(model.mean, model.modes, model.variances, model.residual_variance, rotate, loo)

    @classmethod
    def _pca(cls, reference: np.ndarray, aligned: np.ndarray, rotate: bool) -> "ShapeModel":
        mean = _align(aligned.mean(axis=0), reference, rotate)
        x = (aligned - mean).reshape(len(aligned), -1)
        _, s, vt = np.linalg.svd(x, full_matrices=False)
        variances = s**2 / max(len(aligned) - 1, 1)
        total = float(variances.sum())
        kept = int(np.searchsorted(np.cumsum(variances), VARIANCE_KEPT * total) + 1)
        kept = min(kept, len(variances) - 1) if len(variances) > 1 else 1
        dims = x.shape[1]
        residual = max((total - float(variances[:kept].sum())) / (dims - kept), 1e-6 * total / dims, 1e-18)
        return cls(mean, vt[:kept], variances[:kept], residual, rotate, [0.0])

    def distance(self, points) -> float:
        """sqrt(sum b_i^2 / lambda_i + |residual|^2 / rho): 0 at the mean shape."""
        x = (_align(np.asarray(points, float).reshape(self.mean.shape), self.mean, self.rotate) - self.mean).ravel()
        b = self.modes @ x
        residual = x - self.modes.T @ b
        return float(np.sqrt(np.sum(b**2 / self.variances) + residual @ residual / self.residual_variance))

    def to_dict(self) -> dict:
        return {
            "mean": self.mean.round(8).tolist(),
            "modes": self.modes.round(8).tolist(),
            "variances": self.variances.tolist(),
            "residual_variance": self.residual_variance,
            "rotate": self.rotate,
            "training_distances": self.training_distances.round(6).tolist(),
            "held_out_distances": self.held_out_distances.round(6).tolist(),
            "limit": self.limit,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ShapeModel":
        return cls(
            data["mean"],
            data["modes"],
            data["variances"],
            data["residual_variance"],
            data["rotate"],
            data["training_distances"],
            data.get("held_out_distances", ()),
            data["limit"],
        )


def _point_sets(contours) -> dict[str, list]:
    """Each model's point sets of a list of {bone: (40, 2)}: a bone's own, and the three concatenated (layout)."""
    sets = {bone: [c[bone] for c in contours] for bone in BONES}
    sets[LAYOUT] = [np.concatenate([c[b] for b in BONES]) for c in contours]
    return sets


def fit_hand_models(contours, held_out=()) -> dict[str, ShapeModel]:
    """``contours``: one {bone: (40, 2) pixel xy from the distal tip} per training image, as the trained network
    draws them (the trained convention: right hand, fingers up); ``held_out``: the same on images the network did
    not train on, for the limits. Returns a model per bone and the ``LAYOUT`` model of the three together."""
    training, calibration = _point_sets(list(contours)), _point_sets(list(held_out))
    return {
        name: ShapeModel.fit(shapes, rotate=name != LAYOUT).calibrate(calibration[name])
        for name, shapes in training.items()
    }


def distances(models: dict[str, ShapeModel], control_points: dict) -> dict[str, float]:
    """Distance of each bone's predicted control points, and of their layout, to the training shapes."""
    out = {bone: models[bone].distance(control_points[bone]) for bone in BONES}
    out[LAYOUT] = models[LAYOUT].distance(np.concatenate([control_points[b] for b in BONES]))
    return out


def save(models: dict[str, ShapeModel], path, **about) -> None:
    """``about``: what the models were fitted on (recorded beside the settings)."""
    settings = {"variance_kept": VARIANCE_KEPT, "percentile": PERCENTILE, "margin": MARGIN, **about}
    with open(path, "w") as fh:
        json.dump({"settings": settings, "models": {k: m.to_dict() for k, m in models.items()}}, fh)
        fh.write("\n")


def load(path) -> dict[str, ShapeModel]:
    with open(path) as fh:
        data = json.load(fh)
    return {k: ShapeModel.from_dict(m) for k, m in data["models"].items()}
