"""The contour bundle's statistical shape model (scripts/shape_model.py), on shapes whose distances are known by
construction: Mahalanobis distance in standard deviations of the one mode the shapes vary by."""

from __future__ import annotations

import numpy as np
import pytest

from RheumImagingLib.bundle import bundle_imports
from RheumTextureLib.contour import BUNDLE_DIR

with bundle_imports(BUNDLE_DIR):
    from scripts import shape_model

T = np.linspace(0, 2 * np.pi, 40, endpoint=False)
OUTLINE = np.c_[10 * np.sin(T), -60 * np.cos(T)]  # a long ellipse, 40 points from the top
SD = 0.01  # the standard deviation of the one mode the training shapes vary by


def _mode() -> np.ndarray:
    """A widening of one end, made orthogonal to shifts, scaling and rotation of the outline (so alignment
    leaves it alone to first order)."""
    mode = np.c_[10 * np.sin(T) * (1 - np.cos(T)), 0 * T]
    mode -= mode.mean(axis=0)
    for move in (OUTLINE, np.c_[-OUTLINE[:, 1], OUTLINE[:, 0]]):
        mode -= (mode * move).sum() / (move * move).sum() * move
    return mode


MODE = _mode()


def bone(amount: float, noise: float = 0.0, rng=None) -> np.ndarray:
    return OUTLINE + amount * MODE + (noise * rng.standard_normal(OUTLINE.shape) if noise else 0)


def training(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return [bone(b, 0.02, rng) for b in rng.normal(0, SD, n)]


@pytest.fixture(scope="module")
def model():
    return shape_model.ShapeModel.fit(training(), rotate=True).calibrate(training(20, seed=5))


def test_distance_counts_standard_deviations_of_the_mode_the_shapes_vary_by(model):
    """A shape k SD along the mode is k from the model, over what the noise-free mean shape already has (the
    estimated mode's error adds about k^2 * dimensions / n to the square: 76 / 200 here)."""
    at_mean = model.distance(bone(0.0))
    assert at_mean < 1.0
    for k in (3.0, 6.0):
        assert k <= np.sqrt(model.distance(bone(k * SD)) ** 2 - at_mean**2) <= k * np.sqrt(1 + 2 * 76 / 200)


def turned(points, degrees: float) -> np.ndarray:
    angle = np.deg2rad(degrees)
    return points @ np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]).T


def hand(amount: float) -> dict:
    """Three such bones side by side, as MC2-MC4 lie."""
    return {name: bone(amount) + [dx, 0] for name, dx in zip(shape_model.BONES, (0, 25, 50))}


def noisy_hands(n: int, seed: int, noise: float = 0.05) -> list[dict]:
    """Hands with point noise and a little tilt, as hands lie on the detector."""
    rng = np.random.default_rng(seed)
    return [{name: turned(p, rng.normal(0, 2)) + rng.normal(0, noise, (40, 2)) for name, p in hand(b).items()}
            for b in rng.normal(0, SD, n)]


@pytest.fixture(scope="module")
def hand_models():
    """Fitted on 30 hands, limits learnt on 10 others."""
    return shape_model.fit_hand_models(noisy_hands(30, 1), noisy_hands(10, 2))


def test_bone_distance_ignores_position_size_and_rotation_but_layout_keeps_rotation(hand_models):
    new = hand(SD)
    moved = {name: 3.0 * turned(p, 40) + [500, -70] for name, p in new.items()}
    before, after = shape_model.distances(hand_models, new), shape_model.distances(hand_models, moved)
    for name in shape_model.BONES:
        assert after[name] == pytest.approx(before[name], rel=1e-6)
        assert before[name] < hand_models[name].limit
    assert before[shape_model.LAYOUT] < hand_models[shape_model.LAYOUT].limit < after[shape_model.LAYOUT]


def _bundle_with(models, tmp_path):
    """A copy of the contour bundle (no weights) with ``models`` as its shape model."""
    import shutil

    from RheumTextureLib.quality import SHAPE_MODEL

    bundle = shutil.copytree(BUNDLE_DIR, tmp_path / "bundle", ignore=shutil.ignore_patterns("models", "__pycache__"))
    (bundle / "models").mkdir()
    shape_model.save(models, bundle / SHAPE_MODEL)
    return bundle


def test_quality_names_the_implausible_bone_and_a_hand_unlike_training(hand_models, tmp_path):
    """What ``rheumtexture score`` writes in ``qc`` for contours the stored shape model refuses."""
    from RheumTextureLib.quality import NOT_A_HAND, ContourQuality, implausible_contour

    quality = ContourQuality(_bundle_with(hand_models, tmp_path))
    new = hand(-SD)
    assert quality.reasons(new) == []
    centre, half = new["MC3"].mean(axis=0), np.ptp(new["MC3"], axis=0) / 2
    blob = centre + half.mean() * np.c_[np.sin(T), -np.cos(T)]  # round, not a bone
    assert quality.reasons({**new, "MC3": blob}) == [implausible_contour("MC3"), NOT_A_HAND]
    assert quality.reasons({**new, "MC2": new["MC4"], "MC4": new["MC2"]}) == [NOT_A_HAND]  # out of order
    assert quality.reasons({name: turned(p, 40) for name, p in new.items()}) == [NOT_A_HAND]  # tilted hand


def test_training_distances_are_leave_one_out():
    """A training shape's stored distance is what the model fitted without it gives, larger than in-sample."""
    shapes = training(60)
    model = shape_model.ShapeModel.fit(shapes, rotate=True)
    without_first = shape_model.ShapeModel.fit(shapes[1:], rotate=True)
    assert model.training_distances[0] == pytest.approx(without_first.distance(shapes[0]), rel=0.02)
    assert np.median(model.training_distances) >= np.median([model.distance(s) for s in shapes])


def test_limit_is_the_margin_times_the_percentile_of_held_out_distances_and_survives_a_round_trip(model, tmp_path):
    held_out = training(20, seed=5)
    distances = [model.distance(s) for s in held_out]
    assert model.held_out_distances == pytest.approx(distances)
    assert model.limit == pytest.approx(shape_model.MARGIN * np.percentile(distances, shape_model.PERCENTILE))
    path = tmp_path / "shape_model.json"
    shape_model.save({"MC3": model}, path, fitted_on="test shapes")
    loaded = shape_model.load(path)["MC3"]
    assert loaded.limit == pytest.approx(model.limit)
    assert loaded.held_out_distances == pytest.approx(distances, rel=1e-5)
    probe = bone(4 * SD)
    assert loaded.distance(probe) == pytest.approx(model.distance(probe), rel=1e-6)


def test_the_limit_follows_the_held_out_contours_not_the_training_ones():
    """A network draws new images less precisely than those it trained on. Training hands with point noise 0.05,
    held-out hands with 4 x MARGIN times more: a new hand as noisy as the held-out ones lies beyond MARGIN times the
    training distances' percentile (the limit before calibration out of sample) but within the learnt limit."""
    noisier = 4 * shape_model.MARGIN * 0.05
    models = shape_model.fit_hand_models(noisy_hands(30, 1), noisy_hands(10, 2, noisier))
    new = noisy_hands(1, 3, noisier)[0]
    found = shape_model.distances(models, new)
    for name, model in models.items():
        in_sample_limit = shape_model.MARGIN * np.percentile(model.training_distances, shape_model.PERCENTILE)
        assert in_sample_limit < found[name] < model.limit, name


def test_without_held_out_contours_there_is_no_limit_and_contours_are_not_judged(tmp_path):
    from RheumTextureLib.quality import NO_LIMITS, SHAPE_MODEL, ContourQuality

    models = shape_model.fit_hand_models(noisy_hands(30, 1))
    assert all(model.limit is None for model in models.values())
    bundle = _bundle_with(models, tmp_path)
    assert ContourQuality(bundle).reasons(hand(0.0)) == [NO_LIMITS]


def test_too_few_training_contours_is_an_error():
    with pytest.raises(ValueError, match="at least"):
        shape_model.ShapeModel.fit(training(3), rotate=True)


class _FixedLocaliser:
    """A stand-in localiser giving fixed logits (1, 4, rows, cols), whatever the image."""

    def __init__(self, logits):
        import torch

        self.logits = torch.as_tensor(logits, dtype=torch.float32)[None]

    def __call__(self, image):
        return self.logits


def test_localiser_confidence_is_the_weakest_bones_mean_probability_over_its_region():
    """Logits 0 everywhere except ln(r) for bone k in its region: p = r / (r + 3) there (softmax over 4 classes).
    MC2 at r = 6 (2/3), MC3 at r = 3 (1/2) with a smaller island at r = 30 that is not its region, MC4 at r = 12."""
    import types

    from RheumTextureLib.quality import ContourQuality

    size = (32, 26)
    logits = np.zeros((4, *size))
    logits[1, 4:28, 2:7] = np.log(6)
    logits[2, 4:28, 10:15] = np.log(3)
    logits[2, 0:2, 0:2] = np.log(30)
    logits[3, 4:28, 18:23] = np.log(12)
    def stub(localiser):
        """A contourer whose declared preprocessing gives a localiser-sized image and whose inferer calls the net."""
        predictor = types.SimpleNamespace(localiser=localiser, device="cpu", inferer=lambda x, net: net(x))
        return types.SimpleNamespace(predictor=predictor, network_input=lambda pixels: {"image": np.zeros((1, *size))})

    quality = ContourQuality(BUNDLE_DIR, stub(_FixedLocaliser(logits)))
    image = np.random.default_rng(0).random((64, 52)).astype(np.float32)
    assert quality.localiser_confidence(image) == pytest.approx(0.5, abs=1e-6)
    logits[3] = 0  # MC4 nowhere
    quality.contourer = stub(_FixedLocaliser(logits))
    assert quality.localiser_confidence(image) == 0.0
