"""Markups drawn on an image land on the right pixels whatever the volume geometry."""

import numpy as np


def _volume(scene):
    volume = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", "img")
    volume.SetSpacing(0.2, 0.3, 1.0)
    volume.SetOrigin(10.0, -5.0, 2.0)
    volume.SetIJKToRASDirections(-1, 0, 0, 0, -1, 0, 0, 0, 1)  # LPS-style image, as DICOM loads
    return volume


def test_pixel_ras_round_trip_and_scale(scene):
    from RheumImagingLib.geometry import pixel_to_ras, ras_to_pixel

    volume = _volume(scene)
    xy = np.array([[0.0, 0.0], [12.5, 3.25], [100.0, 40.0]])
    ras = pixel_to_ras(volume, xy)
    np.testing.assert_allclose(ras[0], [10.0, -5.0, 2.0])
    # one column is 0.2 mm along -R, one row 0.3 mm along -A
    np.testing.assert_allclose(ras[1] - ras[0], [-12.5 * 0.2, -3.25 * 0.3, 0.0])
    np.testing.assert_allclose(ras_to_pixel(volume, ras), xy, atol=1e-9)


def test_markups_control_points_round_trip(scene):
    from RheumImagingLib.geometry import control_points_ras, pixel_to_ras, ras_to_pixel, set_control_points_ras

    volume = _volume(scene)
    curve = scene.AddNewNodeByClass("vtkMRMLMarkupsClosedCurveNode", "MC2")
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    xy = np.column_stack([50 + 10 * np.cos(angles), 80 + 30 * np.sin(angles)])
    set_control_points_ras(curve, pixel_to_ras(volume, xy))
    assert curve.GetNumberOfControlPoints() == 40
    np.testing.assert_allclose(ras_to_pixel(volume, control_points_ras(curve)), xy, atol=1e-9)
