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
    rng = np.random.default_rng(3)
    large = rng.gamma(2.0, 30.0, (1100, 1000))  # > 10^6 pixels: MONAI's numpy branch
    fractional = radiographs[0] + rng.uniform(0, 1, radiographs[0].shape)  # from a partial sort
    for pixels in radiographs + [fractional, large]:  # the phantoms' integer grey levels from a histogram
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


def test_patch_resampling_equals_scipy_bit_for_bit(radiographs):
    """The distal-third patch's bilinear resampling is scipy's ``map_coordinates(order=1, mode="nearest")`` to the bit:
    inside the image, beyond its edges (repeated), on pixel centres and halves, from a non-contiguous image."""
    from scipy import ndimage

    roi = _bundle_module("ra_bone_texture", "roi")
    rng = np.random.default_rng(21)
    image = np.asarray(radiographs[2], np.float32)
    rows, cols = image.shape
    for k in range(6):
        grid = np.stack([rng.uniform(-40, rows + 40, (96, 80)), rng.uniform(-40, cols + 40, (96, 80))])
        if k % 2:
            grid = np.round(grid * 2) / 2
        source = image if k < 4 else image.T[::-1]  # a view: strides of another layout
        expected = ndimage.map_coordinates(source, grid, order=1, mode="nearest")
        assert roi.bilinear(source, grid).dtype == np.float32
        assert np.array_equal(roi.bilinear(source, grid), expected)
    assert ((grid < 0) | (grid[0] >= cols)).any()  # some points beyond the edges were compared


def test_contour_label_map_and_largest_components_equal_monai_bit_for_bit():
    """The contour bundle's post-processing (label map, largest edge-connected component of each bone) is MONAI's
    ``AsDiscreted(argmax=True)`` and ``KeepLargestConnectedComponentd(independent=True, connectivity=1)``: on noisy
    logits with many components per label, on equal-sized components (MONAI's choice among ties) and on regions
    that touch only at corners (separate at connectivity 1, one region at full connectivity)."""
    import torch
    from monai.transforms import AsDiscreted, Compose, KeepLargestConnectedComponentd
    from scipy import ndimage

    transforms = _bundle_module("metacarpal_contour", "transforms")

    def ours(connectivity):
        return Compose([transforms.LabelsFromLogitsd("pred"),
                        transforms.KeepLargestComponentPerLabeld("pred", [1, 2, 3], connectivity=connectivity)])

    def monai(connectivity):
        return Compose([AsDiscreted("pred", argmax=True), KeepLargestConnectedComponentd(
            "pred", applied_labels=[1, 2, 3], independent=True, connectivity=connectivity)])

    rng = np.random.default_rng(4)
    cases = [torch.from_numpy(ndimage.gaussian_filter(rng.normal(size=(4, 96, 80)), (0, s, s)).astype(np.float32))
             for s in (0.7, 1.5, 3.0)]
    ties = np.zeros((12, 12), int)
    ties[1:3, 1:3] = ties[6:8, 6:8] = 2  # two 4-pixel regions of label 2
    ties[9, 0] = ties[10, 1] = ties[11, 2] = 1  # a diagonal: three regions at connectivity 1, one at 2
    ties[9, 4] = ties[9, 5] = 1
    cases.append(torch.from_numpy(np.eye(4, dtype=np.float32)[ties].transpose(2, 0, 1).copy()))
    for logits in cases:
        for connectivity in (1, 2):
            mine = ours(connectivity)({"pred": logits.clone()})["pred"]
            theirs = monai(connectivity)({"pred": logits.clone()})["pred"]
            assert torch.equal(torch.as_tensor(mine), torch.as_tensor(theirs))
        assert len(np.unique(ndimage.label(np.asarray(logits.argmax(0) == 1))[0])) > 2 or logits is cases[-1]
    one, full = (np.asarray(ours(c)({"pred": cases[-1].clone()})["pred"])[0] for c in (1, 2))
    assert (one == 1).sum() == 2 and (full == 1).sum() == 3  # the pair at connectivity 1, the diagonal at full


def test_contour_mask_equals_the_per_point_polygon():
    """A contour's mask drawn from its flat coordinate list is the polygon drawn from (x, y) tuples, pixel for pixel."""
    from PIL import Image, ImageDraw

    geometry = _bundle_module("metacarpal_contour", "geometry")
    rng = np.random.default_rng(9)
    angles = np.linspace(0, 2 * np.pi, 400, endpoint=False)
    for _ in range(40):
        outline = np.stack([200 + rng.uniform(20, 80) * np.cos(angles) + rng.normal(0, 2, 400),
                            250 + rng.uniform(50, 150) * np.sin(angles)], axis=1)
        drawn = Image.new("L", (416, 512), 0)
        ImageDraw.Draw(drawn).polygon([(float(x), float(y)) for x, y in outline], fill=1, outline=1)
        assert np.array_equal(geometry.polygon_mask(outline, (512, 416)), np.asarray(drawn, dtype=bool))


def test_contour_crops_in_one_resampling_equal_each_crop_alone(radiographs):
    """The three bones' crops for the Curve-GCN, resampled in one call, are each crop resampled alone."""
    from scipy import ndimage

    geometry = _bundle_module("metacarpal_contour", "geometry")
    image = np.asarray(radiographs[0], np.float32)
    frames = [(40.5, 80.25, 90.0, 200.0), (-20.0, 300.0, 120.5, 260.0), (300.0, -10.0, 150.0, 140.0)]  # 2 cross edges
    crops = geometry.cut_crops(image, frames, 48)
    centres = (np.arange(48) + 0.5) / 48
    for crop, (x0, y0, w, h) in zip(crops, frames):
        yy, xx = np.meshgrid(y0 + centres * h - 0.5, x0 + centres * w - 0.5, indexing="ij")
        assert np.array_equal(crop, ndimage.map_coordinates(image, [yy, xx], order=1, mode="nearest"))
    assert crops.shape == (3, 48, 48) and crops.dtype == np.float32
