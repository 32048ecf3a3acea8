"""The Curve-GCN training loss over all refinement steps (later steps weigh more)."""
from __future__ import annotations

import torch

from .spline import point_matching_loss


class StepPointMatchingLoss(torch.nn.Module):
    """sum_s w_s * point_matching(pred[:, s], target) / sum_s w_s with w_s = s + 1."""

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        steps = pred.shape[1]
        weights = [float(s + 1) for s in range(steps)]
        total = sum(w * point_matching_loss(pred[:, s], target) for s, w in enumerate(weights))
        return total / sum(weights)
