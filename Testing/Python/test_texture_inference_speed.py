"""The faster radiograph scoring path computes what it replaced: the contour bundle's percentile scaling gives
MONAI's output bit for bit on phantom radiographs, and the texture bundle's patch normalisation gives MONAI's within
the rounding of MONAI's own float32 statistics (bit for bit where those are exact), the same in any torch thread
count."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import REPO


def _bundle_module(bundle: str, name: str):
    import importlib

    from RheumImagingLib.bundle import bundle_imports

    with bundle_imports(REPO / "monai_bundle" / bundle):
        return importlib.import_module(f"scripts.{name}")


@pytest.fixture(scope="module")
def radiographs():
    """Three phantom radiographs (seeds 611-613, both labels, a left hand), float32 as scoring reads them."""
    from RheumImagingDemo.hand_phantom import render_hand

    return [render_hand(611, 0)[0], render_hand(612, 1)[0], render_hand(613, 1, laterality="left")[0]]


def test_contour_percentile_scaling_equals_monai_bit_for_bit(radiographs):
    import torch
    from monai.transforms import ScaleIntensityRangePercentilesd

    ours = _bundle_module("metacarpal_contour", "transforms").ScaleIntensityRangePercentilesd
    args = {"keys": "image", "lower": 0.5, "upper": 99.5, "b_min": 0.0, "b_max": 1.0, "clip": True}
    large = np.random.default_rng(3).gamma(2.0, 30.0, (1100, 1000))  # > 10^6 pixels: MONAI's numpy branch
    for pixels in radiographs + [large]:
        image = torch.from_numpy(np.asarray(pixels, np.float32)[None].copy())  # as MetacarpalContourer passes it
        mine = ours(**args)({"image": image.clone()})["image"]
        monai = ScaleIntensityRangePercentilesd(**args)({"image": image.clone()})["image"]
        assert mine.dtype == monai.dtype == torch.float32
        assert torch.equal(torch.as_tensor(mine), torch.as_tensor(monai))
        assert 0 < float((mine == 1).float().mean()) < 0.01  # real clipping happened (0.5 % of the pixels)


def _patches(radiographs) -> list[np.ndarray]:
    """The distal-third patches (1, 224, 224) of each phantom's bones, cut as scoring cuts them."""
    from RheumImagingDemo.hand_phantom import render_hand

    roi = _bundle_module("ra_bone_texture", "roi")
    patches = []
    for seed, pixels in zip((611, 612), radiographs):
        truth = render_hand(seed, seed % 2)[1]
        for bone in truth["bones"].values():
            patches.append(roi.cut_distal_third(pixels.astype(np.float32), bone["contour"], 224, spacing_mm=0.15,
                                                patch_spacing_mm=0.1)[None])
    return patches


def test_texture_normalisation_is_monai_within_its_float32_statistics(radiographs):
    """MONAI takes the mean and std in float32 (their last bit depends on torch's thread count); the bundle's
    transform takes them in float64: the outputs differ at most by what one rounding of each statistic moves them."""
    import torch
    from monai.transforms import NormalizeIntensityd

    ours = _bundle_module("ra_bone_texture", "transforms").NormalizeIntensityd("image")
    for patch in _patches(radiographs):
        mine = ours({"image": patch.copy()})["image"]
        assert isinstance(mine, np.ndarray) and mine.dtype == np.float32 and mine.shape == patch.shape
        exact = (patch.astype(np.float64) - patch.mean(dtype=np.float64)) / patch.std(dtype=np.float64)
        for threads in (1, 2):
            previous = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                monai = np.asarray(NormalizeIntensityd("image")({"image": patch.copy()})["image"])
            finally:
                torch.set_num_threads(previous)
            # one float32 rounding of the mean moves every value by up to ulp(mean) / std, of the std by 2^-23
            # of the value, and the subtraction and division round once more each
            bound = 2 * (np.spacing(np.float32(abs(patch.mean()))) / patch.std() + np.abs(exact) * 2.0**-23)
            assert np.all(np.abs(mine - monai) <= bound + 2 * np.spacing(np.abs(monai)))
        assert np.abs(mine - exact).max() < 1e-5  # and near the exact standardisation


def test_texture_normalisation_equals_monai_bit_for_bit_where_its_statistics_are_exact():
    """Values whose mean (2.5) and population std (1.25) are exact in float32: no statistic rounds, and the
    subtraction and division are MONAI's float32 operations."""
    from monai.transforms import NormalizeIntensityd

    ours = _bundle_module("ra_bone_texture", "transforms").NormalizeIntensityd("image")
    rng = np.random.default_rng(5)
    patch = rng.permutation(np.repeat(np.array([1.25, 3.75], np.float32), 224 * 112)).reshape(1, 224, 224)
    for image in (patch, patch * np.float32(0.5) - np.float32(3.0)):  # mean -1.75, std 0.625
        assert np.array_equal(ours({"image": image})["image"], np.asarray(NormalizeIntensityd("image")(
            {"image": image.copy()})["image"]))
    flat = np.full((1, 8, 8), 7.0, np.float32)  # no spread: divided by 1, as MONAI does
    assert np.array_equal(ours({"image": flat})["image"], np.zeros_like(flat))


def test_torch_threads_restores_the_callers_count():
    import torch

    from RheumImagingLib.threads import torch_threads

    before = torch.get_num_threads()
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("work around the network failed")
    assert torch.get_num_threads() == before


def _thumb_side_row_by_row(upright) -> float:
    """The thumb-side rule as written first, one row at a time (orientation.py's is vectorised)."""
    width, left, right = upright.shape[1], 0, 0
    for row in upright:
        edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(np.int8), [0]])))
        lengths = edges[1::2] - edges[::2]
        if not len(lengths):
            continue
        palm = int(np.argmax(lengths))
        if lengths[palm] < 0.4 * width:
            continue
        left += palm > 0
        right += palm < len(lengths) - 1
    return (left - right) / max(upright.shape[0], 1)


def test_thumb_side_equals_the_row_by_row_formulation(radiographs):
    from scipy import ndimage

    from RheumTextureLib.orientation import _silhouette, _thumb_side

    rng = np.random.default_rng(8)
    masks = [np.rot90(_silhouette(pixels), k) for pixels in radiographs for k in range(4)]
    masks += [rng.random((rng.integers(1, 40), rng.integers(1, 40))) < rng.uniform(0.2, 0.9) for _ in range(100)]
    masks += [ndimage.binary_opening(m) for m in masks[-30:]] + [np.zeros((5, 7), bool), np.ones((3, 4), bool)]
    for mask in masks:
        assert _thumb_side(mask) == _thumb_side_row_by_row(mask)
    assert _thumb_side(masks[0]) > 0 > _thumb_side(masks[8])  # a right hand's thumb at the left, a left hand's not


def test_patch_grid_equals_the_broadcast_formulation(radiographs):
    """The patch's sampling grid, computed one coordinate at a time, is the broadcast (size, size, 2) formulation to
    the bit, so the patches (and the scores) are the ones the bundle cut before."""
    from RheumImagingDemo.hand_phantom import render_hand

    roi = _bundle_module("ra_bone_texture", "roi")

    def broadcast(contour, size, margin, spacing_mm, patch_spacing_mm):
        xy_mm = roi._spacing(spacing_mm if patch_spacing_mm is not None else 1.0)
        f = roi.distal_third_frame(np.asarray(contour, dtype=np.float64) * xy_mm, margin)
        centres = (np.arange(size) + 0.5) / size - 0.5
        if patch_spacing_mm is None:
            rows, cols = -centres * f["length"], centres * f["width"]
        else:
            rows, cols = -centres * size * patch_spacing_mm, centres * size * patch_spacing_mm
        xy = (f["centre"] + rows[:, None, None] * f["axis"] + cols[None, :, None] * f["across"]) / xy_mm
        return np.stack([xy[..., 1], xy[..., 0]])

    for seed in (611, 613):
        truth = render_hand(seed, 1, laterality="left" if seed == 613 else "right")[1]
        for bone in truth["bones"].values():
            for args in ((224, 0.1, 0.15, 0.1), (128, 0.1, (0.12, 0.2), 0.15), (32, 0.1, None, None)):
                assert np.array_equal(roi.distal_third_grid(bone["contour"], *args), broadcast(bone["contour"], *args))
