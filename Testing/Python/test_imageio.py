"""Shared image I/O on real scanners' files (pydicom-data): polarity, grayscale, calibration,
compressed variants, and clear errors that leave the disk untouched."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pydicom
import pytest

from RheumImagingLib.errors import InputError
from RheumImagingLib.imageio import array_from_volume, is_calibrated, load_volume, read_image, spacing_mm

data_store = pytest.importorskip("data_store")
DATA = os.path.join(os.path.dirname(data_store.__file__), "data")
RADIOGRAPHS = ["RG1_UNCR.dcm", "RG1_UNCI.dcm", "RG1_J2KR.dcm", "RG1_J2KI.dcm",
               "RG3_UNCR.dcm", "RG3_UNCI.dcm", "RG3_J2KR.dcm", "RG3_J2KI.dcm"]
ULTRASOUND = ["US1_UNCR.dcm", "US1_UNCI.dcm", "US1_J2KR.dcm", "US1_J2KI.dcm", "gdcm-US-ALOKA-16.dcm",
              "gdcm-US-ALOKA-16_big.dcm", "OBXXXX1A.dcm", "OBXXXX1A_rle.dcm", "OBXXXX1A_expb.dcm",
              "OBXXXX1A_2frame.dcm", "OBXXXX1A_rle_2frame.dcm", "color-pl.dcm", "color-px.dcm"]


def data(name):
    return os.path.join(DATA, name)


@pytest.mark.parametrize("name", RADIOGRAPHS + ULTRASOUND)
def test_every_image_loads_as_grayscale_2d(name):
    image = read_image(data(name))
    raw = pydicom.dcmread(data(name), stop_before_pixels=True)
    assert image.pixels.ndim == 2 and image.pixels.dtype == np.float32
    assert image.pixels.shape == (raw.Rows, raw.Columns)
    assert np.isfinite(image.pixels).all() and image.pixels.std() > 0


def test_monochrome1_is_inverted_so_bone_is_bright():
    """RG1 is a chest film stored MONOCHROME1: after loading, the mediastinum is brighter
    than the lungs on either side of it, and pixels run opposite to the stored values."""
    image = read_image(data("RG1_UNCR.dcm"))
    rows, cols = image.pixels.shape
    band = image.pixels[int(rows * 0.35):int(rows * 0.6)]
    mediastinum = band[:, int(cols * 0.45):int(cols * 0.55)].mean()
    lungs = np.r_[band[:, int(cols * 0.25):int(cols * 0.32)].ravel(), band[:, int(cols * 0.68):int(cols * 0.75)].ravel()].mean()
    assert mediastinum > lungs * 1.1
    stored = pydicom.dcmread(data("RG1_UNCR.dcm")).pixel_array.astype(float)
    assert np.corrcoef(stored.ravel()[::97], image.pixels.ravel()[::97])[0, 1] < -0.99


@pytest.mark.parametrize("stem", ["RG1", "RG3", "US1"])
def test_compressed_variants_match_uncompressed(stem):
    reference = read_image(data(f"{stem}_UNCR.dcm")).pixels
    lossless = read_image(data(f"{stem}_J2KR.dcm")).pixels
    lossy = read_image(data(f"{stem}_J2KI.dcm")).pixels
    np.testing.assert_array_equal(lossless, reference)
    value_range = float(reference.max() - reference.min())
    assert np.abs(lossy - reference).mean() < 0.01 * value_range


def test_rle_and_big_endian_variants_match():
    reference = read_image(data("OBXXXX1A.dcm")).pixels
    np.testing.assert_array_equal(read_image(data("OBXXXX1A_rle.dcm")).pixels, reference)
    # the big-endian copy stores its palette with another bit depth: equal up to scale
    big_endian = read_image(data("OBXXXX1A_expb.dcm")).pixels
    np.testing.assert_allclose(big_endian / big_endian.max(), reference / reference.max(), atol=2e-3)


def test_aloka_ultrasound_calibration_from_regions():
    image = read_image(data("gdcm-US-ALOKA-16.dcm"))
    assert image.calibration == "US region"
    np.testing.assert_allclose(image.spacing_mm, (0.3827, 0.3827), atol=5e-5)


def test_zero_spacing_is_reported_uncalibrated_never_1mm(scene):
    image = read_image(data("RG1_UNCR.dcm"))
    assert image.spacing_mm is None
    assert image.calibration.startswith("uncalibrated") and "PixelSpacing" in image.calibration
    node = load_volume(scene, data("RG1_UNCR.dcm"))
    assert not is_calibrated(node) and spacing_mm(node) is None
    assert node.GetAttribute("RheumImaging.Calibration").startswith("uncalibrated")


def test_multiframe_picks_the_requested_frame():
    first = read_image(data("OBXXXX1A_2frame.dcm"))
    second = read_image(data("OBXXXX1A_2frame.dcm"), frame=1)
    assert first.metadata["n_frames"] == 2 and first.metadata["frame"] == 0 and second.metadata["frame"] == 1
    assert not np.array_equal(first.pixels, second.pixels)
    with pytest.raises(InputError, match="frame 2 does not exist"):
        read_image(data("OBXXXX1A_2frame.dcm"), frame=2)


def test_volume_node_keeps_pixels_spacing_and_patient(scene):
    node = load_volume(scene, data("gdcm-US-ALOKA-16.dcm"))
    np.testing.assert_array_equal(array_from_volume(node), read_image(data("gdcm-US-ALOKA-16.dcm")).pixels)
    np.testing.assert_allclose(spacing_mm(node), (0.38265, 0.38265), atol=1e-4)
    assert node.GetAttribute("RheumImaging.SourceFile").endswith("gdcm-US-ALOKA-16.dcm")


def test_png_is_uncalibrated_grayscale(tmp_path):
    from PIL import Image

    rgb = np.zeros((8, 10, 3), np.uint8)
    rgb[..., 1] = 200
    Image.fromarray(rgb).save(tmp_path / "x.png")
    image = read_image(tmp_path / "x.png")
    assert image.pixels.shape == (8, 10) and image.spacing_mm is None
    np.testing.assert_allclose(image.pixels, 0.587 * 200, rtol=1e-5)


def _bad_inputs(tmp_path):
    text = tmp_path / "notes.dcm"
    text.write_text("not an image")
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(open(data("US1_UNCR.dcm"), "rb").read()[:5000])
    no_pixels = tmp_path / "nopixels.dcm"
    ds = pydicom.dcmread(data("US1_UNCR.dcm"))
    del ds.PixelData
    ds.save_as(no_pixels)
    unsupported = tmp_path / "hsv.dcm"
    ds = pydicom.dcmread(data("US1_UNCR.dcm"))
    ds.PhotometricInterpretation = "HSV"
    ds.save_as(unsupported)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    shutil.copy(data("US1_UNCR.dcm"), mixed)
    shutil.copy(data("RG3_UNCR.dcm"), mixed)
    return [(text, "not a DICOM file"), (truncated, "cannot be decoded|unreadable"), (no_pixels, "without pixel data"),
            (unsupported, "unsupported photometric interpretation HSV"), (mixed, "mixed series"),
            (tmp_path / "missing.dcm", "no such file")]


def test_bad_input_is_one_clear_error_and_leaves_disk_unchanged(tmp_path):
    cases = _bad_inputs(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for path, reason in cases:
        with pytest.raises(InputError, match=reason) as err:
            read_image(path)
        assert str(path) in str(err.value)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
