"""The faster ultrasound scoring path computes what it replaced: the bundle's one-pass transforms give MONAI's
outputs bit for bit on phantom images, the gland and quality measurements computed once per image give what their
straightforward formulation gives, a bundle trained by this version carries its ONNX graph, so scoring exports
nothing, and a cohort scored two images at a time gets the table one image at a time gives."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from conftest import REPO

BUNDLE = REPO / "monai_bundle" / "sjogren_us_segmentation"


@pytest.fixture(scope="module")
def transforms():
    from RheumImagingLib.bundle import bundle_imports

    with bundle_imports(BUNDLE):
        import scripts.transforms as module
    return module


@pytest.fixture(scope="module")
def phantoms():
    """(pixels, truth labels, spacing) of two mucosa and three gland phantom images (seeds 501-505)."""
    from RheumImagingDemo.us_phantom import render_gland, render_mucosa

    images = [render_mucosa(501, 0.4, "homogeneous"), render_mucosa(502, 0.3, "heterogeneous_hyperechoic")]
    images += [render_gland(503 + k, gland, grade) for k, (gland, grade) in
               enumerate([("parotid_left", 0), ("parotid_right", 3), ("submandibular_left", 4)])]
    return [(px, lab, truth["spacing_mm"]) for px, lab, truth in images]


def _noisy(labels, seed):
    """Truth labels with islands of every label sprinkled over them, as a network's raw output has."""
    rng = np.random.default_rng(seed)
    out = np.minimum(labels, 3).copy()
    for value in (0, 1, 2, 3):
        for _ in range(12):
            r, c = rng.integers(0, out.shape[0] - 4), rng.integers(0, out.shape[1] - 4)
            out[r:r + rng.integers(1, 4), c:c + rng.integers(1, 4)] = value
    return out


def test_percentile_scaling_equals_monai_bit_for_bit(transforms, phantoms):
    import torch
    from monai.data import MetaTensor
    from monai.transforms import ScaleIntensityRangePercentilesd

    args = {"keys": "image", "lower": 0.5, "upper": 99.5, "b_min": 0.0, "b_max": 1.0, "clip": True}
    rng = np.random.default_rng(3)
    large = rng.gamma(2.0, 30.0, (1100, 1000))  # > 10^6 pixels: MONAI's numpy branch
    eight_bit = [px for px, _, _ in phantoms]  # counted from a histogram
    fractional = eight_bit[2] + rng.uniform(0, 1, eight_bit[2].shape)  # from a partial sort
    signed_12_bit = np.round(rng.normal(900.0, 700.0, (200, 300))).clip(-1024, 3071)  # a histogram from -1024
    for pixels in eight_bit + [fractional, signed_12_bit, large]:
        image = MetaTensor(torch.from_numpy(np.asarray(pixels, np.float32)[None].copy()),
                           meta={"filename_or_obj": "x.dcm"})
        ours = transforms.ScaleIntensityRangePercentilesd(**args)({"image": image.clone()})["image"]
        monai = ScaleIntensityRangePercentilesd(**args)({"image": image.clone()})["image"]
        assert ours.dtype == monai.dtype == torch.float32 and ours.meta["filename_or_obj"] == "x.dcm"
        assert torch.equal(ours.as_tensor(), monai.as_tensor())
        assert 0 < float((ours == 1).float().mean()) < 0.01  # real clipping happened (0.5 % of the pixels)


def test_largest_component_per_label_equals_monai_bit_for_bit(transforms, phantoms):
    import torch
    from monai.transforms import KeepLargestConnectedComponentd

    for k, (_, labels, _) in enumerate(phantoms):
        pred = torch.from_numpy(_noisy(labels, k).astype(np.float32)[None])
        monai = KeepLargestConnectedComponentd("pred", applied_labels=[1, 2, 3], independent=True)(
            {"pred": pred.clone()})["pred"]
        ours = transforms.KeepLargestComponentPerLabeld("pred", [1, 2, 3])({"pred": pred.clone()})["pred"]
        assert ours.dtype == pred.dtype and torch.equal(ours, monai)
        assert not torch.equal(ours, pred)  # islands were removed
    ties = torch.zeros(1, 9, 9)
    ties[0, 1:3, 1:3] = ties[0, 5:7, 5:7] = 2  # two equal components: MONAI's choice is kept
    monai = KeepLargestConnectedComponentd("p", applied_labels=[2], independent=True)({"p": ties.clone()})["p"]
    assert torch.equal(transforms.KeepLargestComponentPerLabeld("p", [2])({"p": ties.clone()})["p"], monai)


def test_hole_filling_equals_monai_bit_for_bit(transforms, phantoms):
    import torch
    from monai.transforms import FillHolesd

    filled = 0
    for k, (_, labels, _) in enumerate(phantoms):
        pred = torch.from_numpy(_noisy(labels, 20 + k).astype(np.float32)[None])
        monai = FillHolesd("pred", applied_labels=[3])({"pred": pred.clone()})["pred"]
        ours = transforms.FillHolesd("pred", [3])({"pred": pred.clone()})["pred"]
        assert ours.dtype == pred.dtype and torch.equal(ours, monai)
        filled += int((ours != pred).sum())
    assert filled > 0  # islands inside the parenchyma were holes


def test_gland_grade_equals_the_straightforward_formulation(phantoms):
    """Masks, smoothing and distances computed once per image give what each measure computes on its own."""
    from SjogrenUSLib import glands
    from SjogrenUSLib.scoring import load_system

    system = load_system("salaffi_0_4")
    for pixels, labels, spacing in phantoms[2:]:
        sy, sx = spacing
        region = ndimage.binary_fill_holes((labels == 3) | (labels == 4))
        core = (labels == 3) & ndimage.binary_erosion(region, iterations=2)
        smooth = ndimage.gaussian_filter(pixels.astype(np.float64), (glands.SMOOTH_MM / sy, glands.SMOOTH_MM / sx))
        dark = (smooth < glands.FOCUS_RATIO * np.median(smooth[core])) & region
        parts, n = ndimage.label(dark)
        diameters = np.sqrt(4 * np.bincount(parts.ravel(), minlength=n + 1)[1:] * sy * sx / np.pi)
        kept = np.isin(parts, 1 + np.flatnonzero(diameters >= glands.MIN_DIAMETER_MM))
        result = glands.grade_image(pixels, labels, spacing, system)
        assert result.diameters_mm == sorted(d for d in diameters.tolist() if d >= glands.MIN_DIAMETER_MM)
        assert result.inhomogeneity == glands.inhomogeneity_index(pixels, labels, spacing, kept)
        assert result.diffuse_coverage == glands.diffuse_coverage(kept, region, spacing)
    assert any(grade_foci for grade_foci in (glands.detect_foci(*p) for p in phantoms[3:]))  # foci were measured


def test_parenchyma_solidity_equals_the_hull_of_the_whole_image(phantoms):
    from skimage.morphology import convex_hull_image

    from SjogrenUSLib import quality

    for k, (_, labels, _) in enumerate(phantoms[2:]):
        for gland in (np.isin(labels, (3, 4)), _noisy(labels, 10 + k) == 3):
            expected = gland.sum() / convex_hull_image(gland).sum()
            assert quality.features(np.where(gland, 3, 0), "gland")["parenchyma_solidity"] == expected


def test_trained_bundle_carries_its_graph_and_scoring_never_exports(us_segmentation_trained, monkeypatch):
    from RheumImagingLib import runtime
    from RheumImagingLib.bundle import sha256_of
    from SjogrenUSLib.segmentation import USSegmenter

    models = us_segmentation_trained / "models"
    record = json.loads((models / "model.onnx.json").read_text())
    assert (models / "model.onnx").is_file() and record["key"] == sha256_of(models / "model.pt")

    def no_export(*args):
        raise AssertionError("exported at scoring time although the trained bundle has its graph")

    import onnx

    ops = {node.op_type for node in onnx.load(str(models / "model.onnx")).graph.node}
    assert "LeakyRelu" in ops and "PRelu" not in ops  # the stored graph's activations (store_graph)
    monkeypatch.setattr(runtime, "_export", no_export)
    monkeypatch.setenv("RHEUM_IMAGING_CACHE", "/nonexistent/no-cache-needed")
    segmenter = USSegmenter(us_segmentation_trained, runtime="onnxruntime")
    image = np.load(us_segmentation_trained / json.loads(
        (us_segmentation_trained / "datalist.json").read_text())["validation"][0]["image"])
    assert segmenter.provenance()["runtime"].startswith("onnxruntime")
    assert segmenter.predict(image).shape == image.shape


def test_convex_hull_count_equals_skimage_on_random_masks():
    """The row-by-row integer count of the hull's pixels is skimage's ``convex_hull_image`` pixel count, also for
    thin, diagonal and scattered masks where pixel centres lie on the hull's edges."""
    from skimage.morphology import convex_hull_image

    from SjogrenUSLib.quality import convex_hull_pixels

    rng = np.random.default_rng(17)
    masks = [np.ones((1, 1), bool), np.ones((1, 7), bool), np.ones((7, 1), bool), np.eye(6, dtype=bool),
             np.eye(6, dtype=bool)[::-1]]
    for _ in range(150):
        mask = rng.random(tuple(rng.integers(1, 30, 2))) < rng.uniform(0.02, 0.5)
        masks.append(ndimage.binary_dilation(mask, iterations=int(rng.integers(0, 3))) if mask.any() else mask)
    for mask in masks:
        if mask.any():
            assert convex_hull_pixels(mask) == convex_hull_image(mask).sum()


def test_gland_without_hypoechoic_areas_in_the_first_corner_keeps_its_corner(phantoms):
    """With no hypoechoic area, no parenchyma counts as lying near one, also in the image's first corner (scipy's
    distance transform without a feature measures to a point beyond that corner): the index is the spread over the
    whole core away from the gland's border."""
    from SjogrenUSLib import glands
    from SjogrenUSLib.scoring import load_system

    pixels, labels, spacing = phantoms[2]  # grade 0
    centre = np.argwhere(np.isin(labels, (3, 4))).mean(axis=0).astype(int)
    corner = (slice(centre[0], None), slice(centre[1], None))  # the gland cut through its centre by the first corner
    pixels, labels = pixels[corner].astype(np.float64), labels[corner]
    result = glands.grade_image(pixels, labels, spacing, load_system("salaffi_0_4"))
    assert result.diameters_mm == [] and result.diffuse_coverage == 0.0  # no hypoechoic area
    region = ndimage.binary_fill_holes(np.isin(labels, (3, 4)))
    core = (labels == 3) & ndimage.binary_erosion(region, iterations=2)
    keep = core & (ndimage.distance_transform_edt(region, sampling=spacing) > glands.TEXTURE_EDGE_MM)
    assert keep[:10, :10].any()  # the corner holds core pixels
    scale = tuple(glands.TEXTURE_SCALE_MM / s for s in spacing)
    local = ndimage.gaussian_filter(pixels, scale)
    ratio = np.var(local[keep]) / np.var(pixels[keep])
    assert result.inhomogeneity == np.sqrt(max(ratio - glands.speckle_floor(pixels, keep, scale), 0.0))


def test_stored_graph_activations_equal_the_networks_prelus():
    """The stored graph's LeakyReLUs compute what the trained PReLUs compute: the same outputs in eager PyTorch."""
    import torch

    from RheumImagingLib.bundle import Bundle
    from SjogrenUSLib.segmentation import single_slope_prelu_as_leaky_relu

    network = Bundle(BUNDLE, "inference").get("network_def").eval()
    with torch.no_grad():
        for k, prelu in enumerate(m for m in network.modules() if isinstance(m, torch.nn.PReLU)):
            prelu.weight.fill_(0.05 * k - 0.3)  # learnt slopes of either sign
        x = torch.randn(3, 1, 64, 64, generator=torch.Generator().manual_seed(5))
        before = network(x)
        after = single_slope_prelu_as_leaky_relu(network)(x)
    assert not any(isinstance(m, torch.nn.PReLU) for m in network.modules())
    assert torch.equal(before, after)


def test_parenchyma_holes_filled_as_scipy_fills_them(phantoms):
    """The parenchyma region (holes filled from one labelling) is scipy's ``binary_fill_holes``, also for
    scattered masks with holes touching each other diagonally and regions touching the border."""
    from SjogrenUSLib.glands import parenchyma_region

    rng = np.random.default_rng(23)
    maps = [_noisy(labels, 40 + k) for k, (_, labels, _) in enumerate(phantoms)]
    maps += [np.where(rng.random(tuple(rng.integers(1, 30, 2))) < rng.uniform(0.2, 0.9), 3, 0) for _ in range(100)]
    for labels in maps:
        assert np.array_equal(parenchyma_region(labels), ndimage.binary_fill_holes(np.isin(labels, (3, 4))))


def test_two_images_at_once_write_the_table_one_at_a_time_writes(us_segmentation_trained, tmp_path, monkeypatch):
    """The cohort loop reads, segments and measures two images at once, each network call in half the cores: the
    same table as one image at a time, with ONNX Runtime and with eager PyTorch, an unreadable image skipped in its
    place, and torch's threads as they were."""
    import torch

    from RheumImagingLib.prefetch import network_threads
    from SjogrenUSLib.score_cli import score_studies, studies_from_inputs
    from SjogrenUSLib.scoring import load_system
    from SjogrenUSLib.segmentation import USSegmenter
    from SjogrenUSLib.sjogrenus_cli import main

    assert main(["phantom", str(tmp_path / "phantoms"), "--patients", "3", "--seed", "31"]) == 0
    studies = studies_from_inputs([str(tmp_path / "phantoms" / "cohort.csv")])
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"not a DICOM file")
    pid, label, paths, *rest = studies[1]
    studies[1] = (pid, label, {**paths, "parotid_right": broken}, *rest)
    system = load_system("salaffi_0_4")
    threads = torch.get_num_threads()
    tables = {}
    for runtime in ("onnxruntime", "torch"):
        segmenter = USSegmenter(us_segmentation_trained, runtime=runtime)
        assert segmenter.provenance()["runtime"].startswith(runtime)
        with segmenter.beside_other_images():  # fixed while two images are predicted: ONNX Runtime has its own
            assert torch.get_num_threads() == (1 if runtime == "onnxruntime" else network_threads())
        for images_at_once in (2, 1):
            monkeypatch.setattr(USSegmenter, "images_at_once", images_at_once)
            out = tmp_path / f"{runtime}{images_at_once}.csv"
            assert score_studies(studies, out, segmenter, system, progress=False) == {"patients": 3, "failed": 1}
            assert torch.get_num_threads() == threads
            tables[runtime, images_at_once] = out.read_text()
    session = USSegmenter(us_segmentation_trained, runtime="onnxruntime").network.session
    assert session.get_session_options().intra_op_num_threads == network_threads()
    assert tables["onnxruntime", 2] == tables["onnxruntime", 1] and tables["torch", 2] == tables["torch", 1]
    rows = tables["onnxruntime", 2].splitlines()
    assert "broken.dcm: skipped" in rows[2] and "skipped" not in rows[1] + rows[3]


def test_an_image_alone_runs_its_windows_in_parts_with_the_same_labels(us_segmentation_trained, monkeypatch):
    """With no other image beside it, the windows are split between the cores (on 2 cores: two calls of one thread
    at once); beside another image's work, one call. The labels are the same either way."""
    from SjogrenUSLib import segmentation

    segmenter = segmentation.USSegmenter(us_segmentation_trained, runtime="onnxruntime")
    session, batches = segmenter.network.session, []

    class Counting:
        def run(self, outputs, feeds):
            batches.append(len(feeds["input"]))
            return session.run(outputs, feeds)

    segmenter.network._session = Counting()
    monkeypatch.setattr(segmentation, "cores", lambda: 2)
    monkeypatch.setattr(segmentation, "network_threads", lambda: 1)
    image = np.load(us_segmentation_trained / json.loads(
        (us_segmentation_trained / "datalist.json").read_text())["validation"][0]["image"])
    alone = segmenter.predict(image)
    windows = sum(batches)
    assert len(batches) == 2 and abs(batches[0] - batches[1]) <= 1 and windows > 2
    batches.clear()
    with segmenter.beside_other_images():
        beside = segmenter.predict(image)
    assert batches == [windows]
    assert np.array_equal(alone, beside)
