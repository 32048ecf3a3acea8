"""Deep TEN (Zhang, Xue, Dana, CVPR 2017) on a MONAI resnet18 trunk, in pure PyTorch.

Encoding layer maths (paper eq. 1-2), with PyTorch-Encoding's conventions
(zhanghang1989/PyTorch-Encoding, encoding/nn/encoding.py, MIT; written anew here):
residuals r_ik = x_i - c_k, weights a_ik = softmax_k(scale_k * ||r_ik||^2) where the stored
``scale`` is the NEGATIVE smoothing factor (-s_k; initialised uniform(-1, 0)), aggregate
e_k = sum_i a_ik r_ik (a sum over positions, not a mean); codewords initialised
uniform(-1/sqrt(K*D), 1/sqrt(K*D)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from monai.networks.nets import resnet18
from torch import nn


class Encoding(nn.Module):
    """Residual encoding of a (B, D, H, W) or (B, D, N) feature map into (B, K, D)."""

    def __init__(self, D: int = 128, K: int = 32):
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


class DeepTEN(nn.Module):
    """resnet18 trunk (to layer4) -> 1x1 conv 512->D, BN, ReLU -> Encoding -> L2 norm -> linear.

    Returns one logit per image: sigmoid(logit) is the RA probability the ensemble averages.
    ``no_max_pool`` drops the trunk's stride-2 max-pool (output stride 16 instead of 32), so
    small patches still give several descriptors: the CPU demo's 64 px gives 4x4; the full
    config keeps it and uses 224 px (7x7).
    """

    def __init__(self, in_channels: int = 1, D: int = 128, K: int = 32, no_max_pool: bool = False):
        super().__init__()
        self.trunk = resnet18(spatial_dims=2, n_input_channels=in_channels, no_max_pool=no_max_pool, num_classes=1)
        self.trunk.avgpool = nn.Identity()
        self.trunk.fc = nn.Identity()
        self.reduce = nn.Sequential(nn.Conv2d(512, D, 1, bias=False), nn.BatchNorm2d(D), nn.ReLU(inplace=True))
        self.encoding = Encoding(D=D, K=K)
        self.classifier = nn.Linear(K * D, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        t = self.trunk
        x = t.maxpool(t.act(t.bn1(t.conv1(x))))
        return t.layer4(t.layer3(t.layer2(t.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        encoded = self.encoding(self.reduce(self.features(x))).flatten(1)
        return self.classifier(F.normalize(encoded, p=2.0, dim=1))


def param_groups(net: nn.Module, lr: float, head_lr_factor: float = 10.0) -> list[dict]:
    """Fine-tuning groups: the (pretrainable) trunk at ``lr``, the new layers at ``head_lr_factor`` x ``lr``.

    Why: the classifier sees an L2-normalised vector, so its logits grow only as its weights
    grow; at the trunk's rate the probabilities stay near 0.5 for many epochs.
    """
    net = getattr(net, "module", net)  # DistributedDataParallel
    head = [p for m in (net.reduce, net.encoding, net.classifier) for p in m.parameters()]
    return [{"params": list(net.trunk.parameters()), "lr": lr}, {"params": head, "lr": lr * head_lr_factor}]


def load_imagenet_trunk(net: DeepTEN, path: str) -> str:
    """Load torchvision's ImageNet resnet18 state dict into the trunk (fc skipped).

    For a 1-channel input the RGB filters of conv1 are summed, so a gray image equal in all
    three channels gives the same response. Returns the file's sha256.
    """
    from RheumImagingLib.bundle import sha256_of
    from RheumImagingLib.errors import InputError

    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    conv1 = state.get("conv1.weight")
    if conv1 is None:
        raise InputError(path, "not a torchvision resnet18 state dict (conv1.weight missing)")
    if net.trunk.conv1.weight.shape[1] != conv1.shape[1]:
        state["conv1.weight"] = conv1.sum(1, keepdim=True)
    missing, unexpected = net.trunk.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.startswith("fc.")]:
        raise InputError(path, f"weights do not fit the resnet18 trunk (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return sha256_of(path)
