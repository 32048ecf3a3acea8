"""Closed centripetal Catmull-Rom spline through Curve-GCN control points (Ling et al., CVPR 2019).

Centripetal knots (alpha = 0.5) keep the curve free of cusps and self-intersections inside a
segment even when control points are unevenly spaced; the curve passes through every control
point and is C1 at the joins. It draws the contour and the mask at inference (numpy in, numpy
out through ``sample_closed_spline``). It is written in torch, differentiable, so that the loss
can also be taken on points sampled along it (``StepPointMatchingLoss(spline_samples=N)``, the
reference's choice); the shipped configs match the 40 control points instead (docs/README.md).
"""

from __future__ import annotations

import numpy as np
import torch

ALPHA = 0.5
_EPS = 1e-6


def closed_catmull_rom(points: torch.Tensor, n: int, alpha: float = ALPHA) -> torch.Tensor:
    """Sample ``n`` points on the closed spline through ``points`` (..., K, 2).

    Sample 0 is control point 0; samples are spread evenly over the K segments (segment i joins
    point i to point i+1, the last one closes the curve) and the end point is not repeated.
    """
    k = points.shape[-2]
    if k < 3:
        raise ValueError(f"a closed spline needs at least 3 control points, got {k}")
    u = torch.arange(n, dtype=points.dtype, device=points.device) * (k / n)
    seg = torch.clamp(u.floor().long(), max=k - 1)
    frac = (u - seg.to(points.dtype)).unsqueeze(-1)
    p0 = points[..., (seg - 1) % k, :]
    p1 = points[..., seg, :]
    p2 = points[..., (seg + 1) % k, :]
    p3 = points[..., (seg + 2) % k, :]

    def knot(a, b):
        return ((b - a).pow(2).sum(-1, keepdim=True) + _EPS).pow(alpha / 2)

    t0 = torch.zeros_like(frac)
    t1 = t0 + knot(p0, p1)
    t2 = t1 + knot(p1, p2)
    t3 = t2 + knot(p2, p3)
    t = t1 + frac * (t2 - t1)
    a1 = ((t1 - t) * p0 + (t - t0) * p1) / (t1 - t0)
    a2 = ((t2 - t) * p1 + (t - t1) * p2) / (t2 - t1)
    a3 = ((t3 - t) * p2 + (t - t2) * p3) / (t3 - t2)
    b1 = ((t2 - t) * a1 + (t - t0) * a2) / (t2 - t0)
    b2 = ((t3 - t) * a2 + (t - t1) * a3) / (t3 - t1)
    return ((t2 - t) * b1 + (t - t1) * b2) / (t2 - t1)


def sample_closed_spline(control_points, n: int = 400) -> np.ndarray:
    """numpy (..., K, 2) control points -> (..., n, 2) closed contours, for callers outside training (several
    outlines in one call: each sample is computed as alone, in fewer torch operations)."""
    pts = torch.as_tensor(np.asarray(control_points, dtype=np.float64))
    with torch.no_grad():
        return closed_catmull_rom(pts, n).numpy()


def point_matching_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Curve-GCN point-matching loss: mean L1 between (B, N, 2) point sets, minimised over the
    N cyclic shifts of the target so the loss does not depend on where the target starts."""
    n = target.shape[-2]
    idx = (torch.arange(n, device=target.device).unsqueeze(0) + torch.arange(n, device=target.device).unsqueeze(1)) % n
    shifted = target[:, idx, :]  # (B, shifts, N, 2)
    dist = (pred.unsqueeze(1) - shifted).abs().sum(-1).mean(-1)  # (B, shifts)
    return dist.min(dim=1).values.mean()
