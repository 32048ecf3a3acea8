"""The Deep-TEN trunk against torchvision's ResNet18: layout, descriptor grid, ImageNet weights.

torchvision is not a dependency, so its resnet18 is written here from its source
(pytorch/vision torchvision/models/resnet.py: conv1 7x7/2 pad 3 no bias, BN, ReLU, max-pool 3/2
pad 1, BasicBlocks [2, 2, 2, 2] of 3x3 convs without bias, downsample = 1x1 conv stride 2 without
bias + BN on the first block of layers 2-4, fc 512 -> 1000): its state-dict names and shapes, and
a functional forward to compare the trunk with.
"""

import hashlib
import json
import math

import pytest
import torch
import torch.nn.functional as F

from RheumImagingLib.bundle import bundle_imports
from conftest import REPO

BUNDLE = REPO / "monai_bundle" / "ra_bone_texture"
PLANES = (64, 128, 256, 512)


@pytest.fixture(scope="module")
def deepten():
    with bundle_imports(BUNDLE):
        from scripts import deepten
    return deepten


def _bn(prefix, n, gen):
    return {f"{prefix}.weight": 1 + 0.1 * torch.randn(n, generator=gen), f"{prefix}.bias": 0.1 * torch.randn(n, generator=gen),
            f"{prefix}.running_mean": 0.1 * torch.randn(n, generator=gen),
            f"{prefix}.running_var": 0.5 + torch.rand(n, generator=gen),
            f"{prefix}.num_batches_tracked": torch.tensor(1000, dtype=torch.long)}


def _conv(out, inp, k, gen):
    return torch.randn(out, inp, k, k, generator=gen) * math.sqrt(2.0 / (inp * k * k))


def torchvision_resnet18_state(seed=0, batches_tracked=True):
    """A state dict with the names and shapes of torchvision's resnet18 (random values)."""
    gen = torch.Generator().manual_seed(seed)
    state = {"conv1.weight": _conv(64, 3, 7, gen), **_bn("bn1", 64, gen)}
    inplanes = 64
    for layer, planes in enumerate(PLANES, start=1):
        for block in range(2):
            p = f"layer{layer}.{block}"
            state[f"{p}.conv1.weight"] = _conv(planes, inplanes if block == 0 else planes, 3, gen)
            state.update(_bn(f"{p}.bn1", planes, gen))
            state[f"{p}.conv2.weight"] = _conv(planes, planes, 3, gen)
            state.update(_bn(f"{p}.bn2", planes, gen))
            if block == 0 and layer > 1:
                state[f"{p}.downsample.0.weight"] = _conv(planes, inplanes, 1, gen)
                state.update(_bn(f"{p}.downsample.1", planes, gen))
        inplanes = planes
    state["fc.weight"] = 0.01 * torch.randn(1000, 512, generator=gen)
    state["fc.bias"] = torch.zeros(1000)
    if not batches_tracked:
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    return state


def torchvision_forward_to_layer4(state, x):
    """torchvision's ResNet.forward up to layer4, in eval mode, written with torch.nn.functional."""
    def bn(t, p):
        return F.batch_norm(t, state[f"{p}.running_mean"], state[f"{p}.running_var"], state[f"{p}.weight"],
                            state[f"{p}.bias"], training=False, eps=1e-5)

    x = F.relu(bn(F.conv2d(x, state["conv1.weight"], stride=2, padding=3), "bn1"))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    for layer in range(1, 5):
        for block in range(2):
            p = f"layer{layer}.{block}"
            stride = 2 if block == 0 and layer > 1 else 1
            out = F.relu(bn(F.conv2d(x, state[f"{p}.conv1.weight"], stride=stride, padding=1), f"{p}.bn1"))
            out = bn(F.conv2d(out, state[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
            if f"{p}.downsample.0.weight" in state:
                x = bn(F.conv2d(x, state[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1")
            x = F.relu(out + x)
    return x


def test_trunk_parameters_have_torchvision_names_and_shapes(deepten):
    trunk = {k: v.shape for k, v in deepten.DeepTEN(in_channels=3).trunk.state_dict().items()}
    reference = {k: v.shape for k, v in torchvision_resnet18_state().items() if not k.startswith("fc.")}
    assert trunk == reference  # no downsample bias, no extra or missing tensor


@pytest.mark.parametrize("size, grid", [(224, 7), (128, 4), (96, 3), (64, 2)])
def test_descriptor_grid_is_the_patch_size_over_32(deepten, size, grid):
    net = deepten.DeepTEN().eval()
    with torch.no_grad():
        assert net.features(torch.zeros(1, 1, size, size)).shape == (1, 512, grid, grid)


def test_demo_patch_keeps_a_texture_grid(deepten):
    """The CPU demo's patch gives at least 3x3 descriptors (64 px would leave 2x2 = 4)."""
    size = json.loads((BUNDLE / "configs" / "demo.json").read_text())["patch_size"]
    net = deepten.DeepTEN().eval()
    with torch.no_grad():
        grid = net.features(torch.zeros(1, 1, size, size)).shape[-1]
    assert grid == math.ceil(size / 32) and grid >= 3


def test_imagenet_file_loads_into_the_trunk_and_gives_torchvisions_features(deepten, tmp_path):
    """Every tensor of torchvision's file lands in the same-named trunk parameter, and the trunk's
    layer4 map equals torchvision's forward on a gray image given as three equal channels."""
    state = torchvision_resnet18_state(seed=3)
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    net = deepten.DeepTEN(in_channels=1).eval()
    digest = deepten.load_imagenet_trunk(net, str(path))
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    loaded = net.trunk.state_dict()
    for key, value in state.items():
        if key.startswith("fc.") or key == "conv1.weight":
            continue
        assert torch.equal(loaded[key], value), key
    gray = torch.rand(2, 1, 64, 64, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = torchvision_forward_to_layer4(state, gray.expand(-1, 3, -1, -1))
        assert torch.allclose(net.features(gray), expected, atol=1e-4)
        conv1 = F.conv2d(gray.expand(-1, 3, -1, -1), state["conv1.weight"], stride=2, padding=3)
        assert torch.allclose(net.trunk.conv1(gray), conv1, atol=1e-5)


def test_imagenet_file_without_batch_counters_loads(deepten, tmp_path):
    state = torchvision_resnet18_state(seed=5, batches_tracked=False)
    torch.save(state, tmp_path / "old.pth")
    net = deepten.DeepTEN(in_channels=3)
    deepten.load_imagenet_trunk(net, str(tmp_path / "old.pth"))
    assert torch.equal(net.trunk.conv1.weight, state["conv1.weight"])
    assert torch.equal(net.trunk.layer3[0].downsample[0].weight, state["layer3.0.downsample.0.weight"])


def test_files_that_are_not_torchvision_resnet18_are_clear_errors(deepten, tmp_path):
    from monai.networks.nets import resnet18

    net = deepten.DeepTEN()
    medicalnet = tmp_path / "monai_resnet18.pth"  # MONAI's default layout: biased downsample convolutions
    torch.save(resnet18(spatial_dims=2, n_input_channels=3).state_dict(), medicalnet)
    with pytest.raises(deepten.BundleInputError, match="monai_resnet18.pth.*unexpected.*downsample.0.bias"):
        deepten.load_imagenet_trunk(net, str(medicalnet))
    resnet34ish = tmp_path / "wide.pth"
    state = torchvision_resnet18_state()
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 5, 5)
    torch.save(state, resnet34ish)
    with pytest.raises(deepten.BundleInputError, match="wrong shape.*layer1.0.conv1.weight"):
        deepten.load_imagenet_trunk(net, str(resnet34ish))
    with pytest.raises(deepten.BundleInputError, match="not found"):
        deepten.load_imagenet_trunk(net, str(tmp_path / "missing.pth"))
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(deepten.BundleInputError, match="text.pth"):
        deepten.load_imagenet_trunk(net, str(tmp_path / "text.pth"))


def test_a_file_whose_sha256_does_not_match_its_name_is_refused(deepten, tmp_path):
    """torchvision names its files <name>-<first hex digits of the sha256>.pth; a damaged download fails."""
    state = torchvision_resnet18_state()
    torch.save(state, tmp_path / "x.pth")
    digest = hashlib.sha256((tmp_path / "x.pth").read_bytes()).hexdigest()
    good, bad = tmp_path / f"resnet18-{digest[:8]}.pth", tmp_path / "resnet18-f37072fd.pth"
    (tmp_path / "x.pth").rename(good)
    bad.write_bytes(good.read_bytes()[:-1] + b"\0")
    deepten.load_imagenet_trunk(deepten.DeepTEN(), str(good))
    with pytest.raises(deepten.BundleInputError, match="resnet18-f37072fd.pth: sha256 .* does not start with f37072fd"):
        deepten.load_imagenet_trunk(deepten.DeepTEN(), str(bad))
