"""The 5-fold ensemble: one forward per fold model, RA probabilities averaged (the texture score)."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn


class FoldEnsemble(nn.Module):
    """Fold models built by ``make_network`` and loaded safely from ``checkpoints``.

    forward(x) -> (B, 1 + n_folds): column 0 the mean RA probability, then each fold's.
    """

    def __init__(self, make_network: Callable[[], nn.Module], checkpoints: Sequence[str]):
        super().__init__()
        from RheumImagingLib.bundle import load_checkpoint

        self.models = nn.ModuleList()
        self.sha256 = []
        for path in checkpoints:
            net = make_network()
            self.sha256.append(load_checkpoint(net, path))
            self.models.append(net.eval())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.cat([torch.sigmoid(m(x)) for m in self.models], dim=1)
        return torch.cat([probs.mean(1, keepdim=True), probs], dim=1)


def hand_scores(items: Sequence[dict]) -> dict:
    """Per-patient hand score: the mean of its bones' scores; items carry patient_id, score (and label)."""
    hands: dict = {}
    for it in items:
        hands.setdefault(it["patient_id"], {"scores": [], "label": it.get("label")})["scores"].append(float(it["score"]))
    return {pid: {"score": sum(h["scores"]) / len(h["scores"]), "label": h["label"]} for pid, h in hands.items()}


def _auroc(scores, labels) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(set(labels)) == 2 else None


def evaluate(network, inferer, dataloader, device, output_dir) -> dict:
    """AUROC of the ensemble score per bone and per hand; writes ``output_dir/metrics.json``."""
    import json
    import os

    items = []
    with torch.no_grad():
        for batch in dataloader:
            probs = inferer(batch["image"].to(device), network).cpu()
            for i in range(probs.shape[0]):
                items.append({"patient_id": batch["patient_id"][i], "bone": batch["bone"][i],
                              "label": int(batch["label"][i]), "score": float(probs[i, 0])})
    per_bone = {}
    for bone in sorted({it["bone"] for it in items}):
        sub = [it for it in items if it["bone"] == bone]
        per_bone[bone] = _auroc([it["score"] for it in sub], [it["label"] for it in sub])
    hands = hand_scores(items)
    result = {"n_bones": len(items), "n_hands": len(hands), "auroc_bone": per_bone,
              "auroc_hand": _auroc([h["score"] for h in hands.values()], [h["label"] for h in hands.values()])}
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result
