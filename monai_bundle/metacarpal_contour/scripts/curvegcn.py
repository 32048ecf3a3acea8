"""Curve-GCN (Ling et al., CVPR 2019) for one bone crop, written from the paper's equations.

A conv encoder gives features at four scales, resized to one grid (crop/4, i.e. 28x28 for a
112 px crop) and fused; the 40 control points start on a circle of radius 0.7 x half the crop
(point 0 at the top = distal when fingers point up, counter-clockwise in display). Each of the
refinement steps, with its own weights, samples the features bilinearly at the current points,
runs a graph network over the closed contour (neighbours +-1, +-2) and adds an offset.
Points are (x, y) in [0, 1] crop coordinates.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional


def initial_circle(n_points: int = 40, radius: float = 0.35) -> torch.Tensor:
    theta = torch.arange(n_points, dtype=torch.float32) * (2 * math.pi / n_points)
    return torch.stack([0.5 - radius * torch.sin(theta), 0.5 - radius * torch.cos(theta)], dim=-1)


class GraphConv(nn.Module):
    """h_i' = W0 h_i + W1 mean_{j in N(i)} h_j on a cycle, N(i) = {i-2, i-1, i+1, i+2}.

    The mean (the paper's sum divided by |N(i)| = 4) keeps activations from growing fivefold per
    layer through the 14 graph convs of a step, which made the first optimiser steps diverge."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.self_w = nn.Linear(c_in, c_out)
        self.neigh_w = nn.Linear(c_in, c_out, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        neigh = (torch.roll(h, -2, 1) + torch.roll(h, -1, 1) + torch.roll(h, 1, 1) + torch.roll(h, 2, 1)) / 4
        return self.self_w(h) + self.neigh_w(neigh)


class ResGraphConv(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = GraphConv(c, c)
        self.conv2 = GraphConv(c, c)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return functional.relu(h + self.conv2(functional.relu(self.conv1(h))))


class RefinementStep(nn.Module):
    """Graph conv, 6 residual graph convs, graph conv to 32, linear to the (dx, dy) offset.

    The offset passes through ``max_step * tanh``: identical to the linear output while small,
    but one step cannot throw a point far outside the crop early in training (seen with few
    training iterations)."""

    def __init__(self, c_in: int, hidden: int = 64, n_res: int = 6, max_step: float = 0.25):
        super().__init__()
        self.max_step = max_step
        self.head = GraphConv(c_in + 2, hidden)
        self.res = nn.Sequential(*[ResGraphConv(hidden) for _ in range(n_res)])
        self.tail = GraphConv(hidden, 32)
        self.out = nn.Linear(32, 2)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, feats: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        h = functional.relu(self.head(torch.cat([feats, points], dim=-1)))
        h = functional.relu(self.tail(self.res(h)))
        return points + self.max_step * torch.tanh(self.out(h) / self.max_step)


def _block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class SkipEncoder(nn.Module):
    """Four scales (1, 1/2, 1/4, 1/8), each resized to 1/4 and concatenated, then fused."""

    def __init__(self, in_channels: int = 1, width: int = 16, out_channels: int = 64):
        super().__init__()
        chans = [width, width * 2, width * 4, width * 8]
        self.blocks = nn.ModuleList(
            [
                _block(in_channels, chans[0], 1),
                _block(chans[0], chans[1], 2),
                _block(chans[1], chans[2], 2),
                _block(chans[2], chans[3], 2),
            ]
        )
        self.fuse = nn.Sequential(nn.Conv2d(sum(chans), out_channels, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = (x.shape[-2] // 4, x.shape[-1] // 4)
        maps = []
        for block in self.blocks:
            x = block(x)
            maps.append(functional.interpolate(x, size=size, mode="bilinear", align_corners=False))
        return self.fuse(torch.cat(maps, dim=1))


def sample_features(fmap: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Bilinear features (B, K, C) at points (B, K, 2) in [0, 1] (x, y)."""
    grid = (points * 2 - 1).unsqueeze(2)  # (B, K, 1, 2)
    return functional.grid_sample(fmap, grid, mode="bilinear", align_corners=False).squeeze(-1).transpose(1, 2)


class CurveGCN(nn.Module):
    """Crop (B, 1, S, S) -> control points after each step (B, steps, K, 2) in [0, 1]."""

    def __init__(
        self,
        in_channels: int = 1,
        n_points: int = 40,
        n_steps: int = 3,
        width: int = 16,
        feature_channels: int = 64,
        hidden: int = 64,
        init_radius: float = 0.35,
    ):
        super().__init__()
        self.encoder = SkipEncoder(in_channels, width, feature_channels)
        self.steps = nn.ModuleList([RefinementStep(feature_channels, hidden) for _ in range(n_steps)])
        self.register_buffer("init_points", initial_circle(n_points, init_radius))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fmap = self.encoder(x)
        points = self.init_points.unsqueeze(0).expand(x.shape[0], -1, -1)
        out = []
        for step in self.steps:
            points = step(sample_features(fmap, points), points)
            out.append(points)
        return torch.stack(out, dim=1)
