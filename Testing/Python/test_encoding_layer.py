"""The Deep-TEN residual Encoding layer (monai_bundle/ra_bone_texture/scripts/deepten.py) against its maths."""

import math

import pytest
import torch

from RheumImagingLib.bundle import bundle_imports
from conftest import REPO

BUNDLE = REPO / "monai_bundle" / "ra_bone_texture"


@pytest.fixture(scope="module")
def Encoding():
    with bundle_imports(BUNDLE):
        from scripts.deepten import Encoding
    return Encoding


def _layer(Encoding, D=6, K=4, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return Encoding(D=D, K=K).to(dtype)


def test_output_shape_and_map_or_set_input(Encoding):
    layer = _layer(Encoding, D=128, K=32, dtype=torch.float32)
    x = torch.randn(2, 128, 7, 7)
    out = layer(x)
    assert out.shape == (2, 32, 128)
    assert torch.allclose(layer(x.flatten(2)), out)  # (B, D, N) is the same set of descriptors


def test_permutation_invariance_over_positions(Encoding):
    layer = _layer(Encoding)
    x = torch.randn(3, 6, 20, dtype=torch.float64)
    perm = torch.randperm(20)
    assert torch.allclose(layer(x[:, :, perm]), layer(x), atol=1e-12)


def test_translation_of_features_and_codewords_leaves_output_unchanged(Encoding):
    """Residuals x_i - c_k are unchanged when x and c move by the same vector, so E is invariant;
    moving x alone changes E (the layer is not trivially constant)."""
    layer = _layer(Encoding)
    x = torch.randn(2, 6, 15, dtype=torch.float64)
    shift = torch.randn(6, dtype=torch.float64)
    before = layer(x)
    moved_x = layer(x + shift.view(1, 6, 1))
    with torch.no_grad():
        layer.codewords += shift
    assert torch.allclose(layer(x + shift.view(1, 6, 1)), before, atol=1e-10)
    assert not torch.allclose(moved_x, before, atol=1e-3)


def test_zero_smoothing_gives_uniform_assignment(Encoding):
    """s = 0: a_ik = 1/K, so e_k = (sum_i x_i - N c_k) / K."""
    layer = _layer(Encoding)
    with torch.no_grad():
        layer.scale.zero_()
    x = torch.randn(2, 6, 12, dtype=torch.float64)
    expected = (x.sum(2).unsqueeze(1) - 12 * layer.codewords.unsqueeze(0)) / 4
    assert torch.allclose(layer(x), expected, atol=1e-12)


def test_large_smoothing_gives_hard_assignment(Encoding):
    """Equal, very negative scale (large s): each x_i goes to its nearest codeword only,
    e_k = sum over the x_i nearest to c_k of (x_i - c_k)."""
    layer = _layer(Encoding)
    with torch.no_grad():
        layer.codewords.copy_(torch.randn(4, 6, dtype=torch.float64) * 3)
        layer.scale.fill_(-1e4)
    x = torch.randn(1, 6, 30, dtype=torch.float64) * 3
    pts = x[0].T
    nearest = torch.cdist(pts, layer.codewords).argmin(1)
    expected = torch.stack([(pts[nearest == k] - layer.codewords[k]).sum(0) for k in range(4)])
    assert torch.allclose(layer(x)[0], expected, atol=1e-8)


def test_gradcheck_float64(Encoding):
    layer = _layer(Encoding, D=3, K=2)
    x = torch.randn(2, 3, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda inp, c, s: torch.func.functional_call(
        layer, {"codewords": c, "scale": s}, (inp,)), (x, layer.codewords.detach().clone().requires_grad_(),
                                                       layer.scale.detach().clone().requires_grad_()))


def test_initialisation_ranges_follow_pytorch_encoding(Encoding):
    layer = _layer(Encoding, D=128, K=32, dtype=torch.float32)
    bound = 1 / math.sqrt(32 * 128)
    c = layer.codewords.detach()
    assert c.abs().max() <= bound and c.abs().max() > 0.9 * bound and abs(float(c.mean())) < 0.1 * bound
    s = layer.scale.detach()
    assert s.max() <= 0 and s.min() >= -1 and s.max() - s.min() > 0.5

