"""Pixel <-> RAS coordinates of a 2-D image volume node, for markups drawn on images.

Image-space points are ``(x, y)`` = (column, row) with pixel centres at integers, the
convention the networks and phantoms use; markups live in RAS (mm).
"""

from __future__ import annotations

import numpy as np
import vtk


def _ijk_to_ras(volume) -> np.ndarray:
    matrix = vtk.vtkMatrix4x4()
    volume.GetIJKToRASMatrix(matrix)
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)])


def pixel_to_ras(volume, xy) -> np.ndarray:
    """(N, 2) column/row positions -> (N, 3) RAS positions on the image plane."""
    return pixels_through(_ijk_to_ras(volume), xy)


def ras_to_pixel(volume, ras) -> np.ndarray:
    """(N, 3) RAS positions -> (N, 2) column/row positions (projected on the image plane)."""
    return ras_through(_ijk_to_ras(volume), ras)


def pixels_through(ijk_to_ras: np.ndarray, xy) -> np.ndarray:
    """(N, 2) column/row positions -> (N, 3) RAS through a 4x4 IJK-to-RAS matrix (a node's or a file's)."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    ijk1 = np.column_stack([xy, np.zeros(len(xy)), np.ones(len(xy))])
    return (ijk1 @ ijk_to_ras.T)[:, :3]


def ras_through(ijk_to_ras: np.ndarray, ras) -> np.ndarray:
    """(N, 3) RAS -> (N, 2) column/row positions through a 4x4 IJK-to-RAS matrix."""
    ras = np.asarray(ras, dtype=float).reshape(-1, 3)
    ras1 = np.column_stack([ras, np.ones(len(ras))])
    return (ras1 @ np.linalg.inv(ijk_to_ras).T)[:, :2]


def control_points_ras(markups) -> np.ndarray:
    """All control point positions of a markups node, (N, 3) RAS."""
    points = vtk.vtkPoints()
    markups.GetControlPointPositionsWorld(points)
    return np.array([points.GetPoint(i) for i in range(points.GetNumberOfPoints())]).reshape(-1, 3)


def set_control_points_ras(markups, ras) -> None:
    points = vtk.vtkPoints()
    for p in np.asarray(ras, dtype=float).reshape(-1, 3):
        points.InsertNextPoint(*p)
    markups.SetControlPointPositionsWorld(points)
