"""Deep TEN (Zhang, Xue, Dana, CVPR 2017) on a ResNet18 trunk in torchvision's layout, in pure PyTorch.

Encoding layer maths (paper eq. 1-2), with PyTorch-Encoding's conventions
(zhanghang1989/PyTorch-Encoding, encoding/nn/encoding.py, MIT; written anew here):
residuals r_ik = x_i - c_k, weights a_ik = softmax_k(scale_k * ||r_ik||^2) where the stored
``scale`` is the NEGATIVE smoothing factor (-s_k; initialised uniform(-1, 0)), aggregate
e_k = sum_i a_ik r_ik (a sum over positions, not a mean); codewords initialised
uniform(-1/sqrt(K*D), 1/sqrt(K*D)).
"""

from __future__ import annotations

import math
import os
import re

import torch
from monai.networks.nets import ResNet
from scripts.checkpoints import BundleInputError, sha256_of
from torch import nn


class Encoding(nn.Module):
    """Residual encoding of a (B, D, H, W) or (B, D, N) feature map into (B, K, D)."""

    def __init__(self, D: int = 128, K: int = 32):  # noqa: N803 (D, K: the paper's notation, Zhang et al. 2017)
        super().__init__()
        self.D, self.K = D, K
        self.codewords = nn.Parameter(torch.empty(K, D))
        self.scale = nn.Parameter(torch.empty(K))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.K * self.D)
        nn.init.uniform_(self.codewords, -bound, bound)
        nn.init.uniform_(self.scale, -1.0, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(2).transpose(1, 2)  # B, N, D
        residuals = x.unsqueeze(2) - self.codewords.view(1, 1, self.K, self.D)  # B, N, K, D
        weights = torch.softmax(self.scale.view(1, 1, self.K) * residuals.pow(2).sum(-1), dim=2)  # B, N, K
        return (weights.unsqueeze(-1) * residuals).sum(1)  # B, K, D


def resnet18_trunk(in_channels: int = 1) -> ResNet:
    """MONAI's ResNet with torchvision's resnet18 layout: conv1 7x7 stride 2, max-pool, BasicBlocks
    [2, 2, 2, 2], 1x1 downsample convolutions without bias, so torchvision's ImageNet state dict
    fits parameter for parameter (MONAI's ``resnet18`` defaults to conv1 stride 1 and biased
    downsample convolutions, the 3D MedicalNet layout)."""
    return ResNet(
        "basic",
        [2, 2, 2, 2],
        [64, 128, 256, 512],
        spatial_dims=2,
        n_input_channels=in_channels,
        conv1_t_size=7,
        conv1_t_stride=2,
        no_max_pool=False,
        shortcut_type="B",
        bias_downsample=False,
        num_classes=1000,
    )


class DeepTEN(nn.Module):
    """ResNet18 trunk (to layer4) -> 1x1 conv 512->D, BN, ReLU -> Encoding -> L2 norm -> linear.

    Returns one logit per image: sigmoid(logit) is the RA probability the ensemble averages.
    Descriptor grid: conv1 (7x7, stride 2), the max-pool and layers 2-4 (stride 2 each) each
    map n to ceil(n / 2), output stride 32: the paper's 224 px patch gives 7x7 = 49
    descriptors, the CPU demo's 128 px 4x4 = 16 (96 px: 3x3, 64 px: 2x2).
    """

    def __init__(self, in_channels: int = 1, D: int = 128, K: int = 32):  # noqa: N803 (the paper's D, K)
        super().__init__()
        self.trunk = resnet18_trunk(in_channels)
        self.trunk.avgpool = nn.Identity()
        self.trunk.fc = nn.Identity()
        self.reduce = nn.Sequential(nn.Conv2d(512, D, 1, bias=False), nn.BatchNorm2d(D), nn.ReLU(inplace=True))
        self.encoding = Encoding(D=D, K=K)
        self.classifier = nn.Linear(K * D, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The layer4 map (B, 512, H/32, W/32): the trunk's forward without pooling and fc."""
        t = self.trunk
        x = t.maxpool(t.act(t.bn1(t.conv1(x))))
        return t.layer4(t.layer3(t.layer2(t.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoded = self.encoding(self.reduce(self.features(x))).flatten(1)
        return self.classifier(nn.functional.normalize(encoded, p=2.0, dim=1))


def param_groups(net: nn.Module, lr: float, head_lr_factor: float = 10.0) -> list[dict]:
    """Fine-tuning groups: the (pretrainable) trunk at ``lr``, the new layers at ``head_lr_factor`` x ``lr``.

    Why: the classifier sees an L2-normalised vector, so its logits grow only as its weights
    grow; at the trunk's rate the probabilities stay near 0.5 for many epochs.
    """
    net = getattr(net, "module", net)  # DistributedDataParallel
    head = [p for m in (net.reduce, net.encoding, net.classifier) for p in m.parameters()]
    return [{"params": list(net.trunk.parameters()), "lr": lr}, {"params": head, "lr": lr * head_lr_factor}]


def load_imagenet_trunk(net: DeepTEN, path: str) -> str:
    """Load torchvision's ImageNet resnet18 file (``resnet18-f37072fd.pth``) into the trunk.

    The file is a plain state dict with torchvision's names (``conv1.weight``, ``bn1.*``,
    ``layer1.0.conv1.weight``, ..., ``layer2.0.downsample.0.weight``, ``fc.*``), which are the
    trunk's names too; ``fc`` is skipped and BatchNorm ``num_batches_tracked`` may be absent
    (older torchvision files lack it). For a 1-channel input the RGB filters of conv1 are summed,
    so a gray image equal in all three channels gives the same response. Returns the file's sha256.

    As torchvision's ``load_state_dict_from_url(check_hash=True)``, a name ``<name>-<hex>.<ext>``
    promises that the file's sha256 starts with ``<hex>``: a corrupt or partial download is refused.
    """
    digest = sha256_of(path) if os.path.isfile(path) else ""
    prefix = re.search(r"-([a-f0-9]+)\.", os.path.basename(path))  # torchvision's HASH_REGEX
    if digest and prefix and not digest.startswith(prefix.group(1)):
        raise BundleInputError(
            path,
            f"sha256 {digest[:12]}... does not start with {prefix.group(1)} as the file name "
            "says (corrupt or incomplete download?)",
        )

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BundleInputError(path, "pretrained trunk file not found") from None
    except Exception as exc:
        raise BundleInputError(path, f"not a PyTorch state dict ({exc.__class__.__name__})") from None
    if not isinstance(state, dict) or "conv1.weight" not in state:
        raise BundleInputError(path, "not a torchvision resnet18 state dict (conv1.weight missing)")
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    trunk = net.trunk.state_dict()
    conv1 = state["conv1.weight"]
    if conv1.dim() == 4 and conv1.shape[1] != trunk["conv1.weight"].shape[1]:
        state["conv1.weight"] = conv1.sum(1, keepdim=True)
    unexpected = sorted(set(state) - set(trunk))
    missing = sorted(k for k in set(trunk) - set(state) if not k.endswith("num_batches_tracked"))
    wrong = sorted(k for k in set(state) & set(trunk) if state[k].shape != trunk[k].shape)
    if unexpected or missing or wrong:
        raise BundleInputError(
            path,
            "weights do not fit the resnet18 trunk "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shape {wrong[:3]})",
        )
    net.trunk.load_state_dict(state, strict=False)
    return digest
