"""Training contours in the network's convention, from outlines drawn any way.

An annotator's closed curve (Slicer markups, a segmentation's boundary, this bundle's own output) may have any
number of points, start anywhere and run either way round. The Curve-GCN learns 40 control points equally spaced
in arc length, counter-clockwise on screen (y down), point 0 at the distal tip (fingers up):
the ROI cut of the texture score starts there. The tip is where the bone's long axis (the outline's principal
axis) leaves the outline at its upper end: on a flat-topped cap the topmost point moves by several pixels with the
sampling of the outline, the axis crossing does not.
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


def _tip_arc(loop: np.ndarray) -> float:
    """Arc length along ``loop`` (equally spaced points) where its principal axis crosses it at the upper end."""
    centred = loop - loop.mean(axis=0)
    axis = np.linalg.svd(centred, full_matrices=False)[2][0]
    axis = -axis if axis[1] > 0 else axis  # pointing up the image (distal when fingers point up)
    side = centred @ np.array([-axis[1], axis[0]])
    along = centred @ axis
    nxt = np.roll(side, -1)
    crossings = np.nonzero((side <= 0) != (nxt <= 0))[0]
    i = crossings[np.argmax(along[crossings])]
    frac = side[i] / (side[i] - nxt[i]) if side[i] != nxt[i] else 0.0
    step = np.hypot(*np.diff(np.concatenate([loop, loop[:1]]), axis=0).T)
    return float(np.concatenate([[0.0], np.cumsum(step)])[i] + frac * step[i])


def to_network_points(points_xy, n: int = N_POINTS) -> np.ndarray:
    """(n, 2) pixel (x, y): the closed outline resampled from its distal tip, counter-clockwise on screen."""
    pts = np.asarray(points_xy, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3:
        raise ValueError(f"a closed outline needs at least 3 (x, y) points, got shape {pts.shape}")
    if len(pts) > 3 and np.allclose(pts[0], pts[-1]):
        pts = pts[:-1]  # a closing point repeated
    if signed_area(pts) > 0:
        pts = pts[::-1]
    dense = _along(pts, _DENSE)
    return _along(dense, n, start=_tip_arc(dense))


def distal_tip(points_xy) -> np.ndarray:
    """(x, y) where the outline's long axis leaves it at the upper end."""
    dense = _along(np.asarray(points_xy, dtype=float), _DENSE)
    return _along(dense, 1, start=_tip_arc(dense))[0]


def from_distal_tip(points_xy) -> np.ndarray:
    """Predicted control points shifted cyclically so point 0 is the one nearest the distal tip (order kept)."""
    pts = np.asarray(points_xy, dtype=float)
    return np.roll(pts, -int(np.argmin(np.hypot(*(pts - distal_tip(pts)).T))), axis=0)
