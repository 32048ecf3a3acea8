"""Training contours in the network's convention, from outlines drawn any way.

An annotator's closed curve (Slicer markups, a segmentation's boundary, this bundle's own output) may have any
number of points, start anywhere and run either way round. The Curve-GCN learns 40 control points equally spaced
in arc length, counter-clockwise on screen (y down), point 0 at the distal tip (the topmost point, fingers up):
the ROI cut of the texture score starts there.
"""

from __future__ import annotations

import numpy as np

N_POINTS = 40
_DENSE = 2000  # samples along the drawn polyline before picking the tip and resampling


def signed_area(points_xy) -> float:
    """Shoelace area in pixel (x, y); negative for counter-clockwise on screen (y points down)."""
    x, y = np.asarray(points_xy, dtype=float).T
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


def _along(loop: np.ndarray, n: int, start: float = 0.0) -> np.ndarray:
    """``n`` points equally spaced in arc length along the closed polyline ``loop``, from arc length ``start``."""
    closed = np.concatenate([loop, loop[:1]])
    arc = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(closed, axis=0).T))])
    target = (start + np.arange(n) * arc[-1] / n) % arc[-1]
    return np.stack([np.interp(target, arc, closed[:, 0]), np.interp(target, arc, closed[:, 1])], axis=1)


def to_network_points(points_xy, n: int = N_POINTS) -> np.ndarray:
    """(n, 2) pixel (x, y): the closed outline resampled from its topmost point, counter-clockwise on screen."""
    pts = np.asarray(points_xy, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
        raise ValueError(f"a closed outline needs at least 3 (x, y) points, got shape {pts.shape}")
    if len(pts) > 3 and np.allclose(pts[0], pts[-1]):
        pts = pts[:-1]  # a closing point repeated
    if signed_area(pts) > 0:
        pts = pts[::-1]
    dense = _along(pts, _DENSE)
    tip = int(np.argmin(dense[:, 1]))
    return _along(np.roll(dense, -tip, axis=0), n)
