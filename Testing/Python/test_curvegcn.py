"""Closed centripetal Catmull-Rom spline and the Curve-GCN point-matching loss of metacarpal_contour."""
import numpy as np
import pytest
import torch

from RheumImagingLib.bundle import bundle_imports
from conftest import REPO

BUNDLE = REPO / "monai_bundle" / "metacarpal_contour"


@pytest.fixture(scope="module")
def spline():
    with bundle_imports(BUNDLE):
        from scripts import spline as module
    return module


UNEVEN = np.array([[0, 0], [10, 0], [10.5, 0.2], [11, 5], [5, 12], [4.8, 11.9], [0, 6]], float)


def test_spline_is_closed_and_passes_through_control_points(spline):
    per = 50
    curve = spline.sample_closed_spline(UNEVEN, len(UNEVEN) * per)
    np.testing.assert_allclose(curve[::per], UNEVEN, atol=1e-6)
    # the last sample approaches the start: the curve closes on control point 0
    step = np.linalg.norm(np.diff(curve, axis=0), axis=1).max()
    assert np.linalg.norm(curve[-1] - curve[0]) <= step + 1e-9


def test_spline_is_c1_at_the_joins(spline):
    per = 2000
    curve = spline.sample_closed_spline(UNEVEN, len(UNEVEN) * per)
    for i in range(len(UNEVEN)):
        j = i * per
        before = curve[j] - curve[j - 1]
        after = curve[(j + 1) % len(curve)] - curve[j]
        cos = before @ after / (np.linalg.norm(before) * np.linalg.norm(after))
        assert cos > 0.995, f"tangent breaks at control point {i}: cos {cos:.4f}"


def _total_absolute_turning(curve):
    steps = np.diff(np.vstack([curve, curve[:1]]), axis=0)
    nxt = np.roll(steps, -1, axis=0)
    ang = np.arctan2(steps[:, 0] * nxt[:, 1] - steps[:, 1] * nxt[:, 0], (steps * nxt).sum(1))
    return np.abs(ang).sum() / (2 * np.pi)


def test_centripetal_parameterisation_has_no_cusps(spline):
    # a short segment between long ones: a cusp or loop adds turning beyond the one turn of a
    # simple convex outline
    polygon = torch.tensor([[0, 0], [20, 0], [20.5, 1], [20, 2], [0, 10]], dtype=torch.float64)
    centripetal = spline.closed_catmull_rom(polygon, 2500).numpy()
    assert _total_absolute_turning(centripetal) < 1.02
    # uniform knots (alpha 0) on the same polygon do loop: the check can fail
    uniform = spline.closed_catmull_rom(polygon, 2500, alpha=0.0).numpy()
    assert _total_absolute_turning(uniform) > 1.5


def test_point_matching_loss_ignores_cyclic_shift_of_the_target(spline):
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 40, 2, generator=gen)
    target = torch.rand(2, 40, 2, generator=gen)
    base = spline.point_matching_loss(pred, target)
    for s in (1, 7, 39):
        assert torch.allclose(spline.point_matching_loss(pred, torch.roll(target, s, dims=1)), base)
    assert spline.point_matching_loss(target, torch.roll(target, 13, dims=1)).item() == pytest.approx(0.0)
    assert base.item() > 0.1


def _ellipse_batch(n, size=64, seed=0):
    """Bright tall ellipses (bone-like) and their 40-point outlines from the top, counter-clockwise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] + 0.5
    images, targets = [], []
    theta = np.arange(40) * 2 * np.pi / 40
    for _ in range(n):
        cx, cy = rng.uniform(0.45, 0.55, 2)
        ax, ay = rng.uniform(0.12, 0.18), rng.uniform(0.38, 0.44)
        inside = ((xx / size - cx) / ax) ** 2 + ((yy / size - cy) / ay) ** 2 <= 1
        images.append(inside.astype(np.float32) + rng.normal(0, 0.05, inside.shape).astype(np.float32))
        targets.append(np.stack([cx - ax * np.sin(theta), cy - ay * np.cos(theta)], -1))
    return torch.tensor(np.array(images))[:, None], torch.tensor(np.array(targets), dtype=torch.float32)


def test_one_refinement_step_moves_the_circle_toward_the_target():
    torch.manual_seed(0)
    with bundle_imports(BUNDLE):
        from scripts.curvegcn import CurveGCN
        from scripts.spline import closed_catmull_rom, point_matching_loss
    images, targets = _ellipse_batch(8)
    net = CurveGCN(n_steps=1, width=8, feature_channels=32, hidden=32)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    target_curve = closed_catmull_rom(targets, 80)

    def loss_and_distance():
        points = net(images)[:, -1]
        loss = point_matching_loss(closed_catmull_rom(points, 80), target_curve)
        return loss, (points - targets).norm(dim=-1).mean().item()

    net.train()
    first_loss, first_dist = loss_and_distance()
    for _ in range(60):
        opt.zero_grad()
        loss, _ = loss_and_distance()
        loss.backward()
        opt.step()
    last_loss, last_dist = loss_and_distance()
    assert last_loss.item() < 0.5 * first_loss.item()
    assert last_dist < 0.6 * first_dist


def test_curvegcn_exports_to_torchscript_with_equal_output(tmp_path):
    torch.manual_seed(0)
    with bundle_imports(BUNDLE):
        from scripts.curvegcn import CurveGCN
    net = CurveGCN(width=8, feature_channels=32, hidden=32).eval()
    x = torch.rand(2, 1, 64, 64)
    traced = torch.jit.trace(net, x)
    traced.save(str(tmp_path / "curvegcn.ts"))
    loaded = torch.jit.load(str(tmp_path / "curvegcn.ts"))
    with torch.no_grad():
        eager = net(x)
        assert eager.shape == (2, 3, 40, 2)
        torch.testing.assert_close(loaded(x), eager, atol=1e-5, rtol=0)


def test_spline_sampled_loss_ignores_sliding_along_the_outline_control_point_loss_does_not():
    """A circle's control points moved half a spacing along the circle: the same outline. Matching
    control points sees the move (~ the chord of half a spacing), matching spline samples barely."""
    with bundle_imports(BUNDLE):
        from scripts.losses import StepPointMatchingLoss
    theta = torch.arange(40, dtype=torch.float64) * (2 * np.pi / 40)
    target = torch.stack([0.5 + 0.3 * torch.cos(theta), 0.5 + 0.3 * torch.sin(theta)], -1)[None]
    slid = torch.stack([0.5 + 0.3 * torch.cos(theta + np.pi / 40), 0.5 + 0.3 * torch.sin(theta + np.pi / 40)], -1)
    pred = slid[None, None].expand(1, 3, 40, 2)
    chord = 0.3 * np.pi / 40  # half a spacing on the circle; L1 of the move averages ~ 4/pi x that
    assert float(StepPointMatchingLoss()(pred, target)) == pytest.approx(4 / np.pi * chord, rel=0.05)
    assert float(StepPointMatchingLoss(spline_samples=160)(pred, target)) < 0.05 * chord
