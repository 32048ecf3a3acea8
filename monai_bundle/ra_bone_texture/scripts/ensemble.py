"""The 5-fold ensemble: one forward per fold model, RA probabilities averaged (the texture score)."""

from __future__ import annotations

import csv
import json
import os
from typing import Callable, Sequence

import torch
from scripts.checkpoints import load_checkpoint
from torch import nn


def build_and_load(make_network: Callable[[], nn.Module], path: str) -> tuple[nn.Module, str]:
    """A fold's network built by ``make_network`` with its checkpoint loaded safely, and the checkpoint's sha256."""
    net = make_network()
    return net, load_checkpoint(net, path)


class FoldEnsemble(nn.Module):
    """One model per checkpoint in ``checkpoints``, from ``load_fold(make_network, path) -> (model, sha256)``.

    By default each fold's network is built and loaded (:func:`build_and_load`); a host may pass its own
    ``load_fold`` (the extension runs a fold's stored ONNX graph without building the network).
    forward(x) -> (B, 1 + n_folds): column 0 the mean RA probability, then each fold's.
    """

    def __init__(
        self,
        make_network: Callable[[], nn.Module],
        checkpoints: Sequence[str],
        load_fold: Callable[[Callable[[], nn.Module], str], tuple[nn.Module, str]] | None = None,
    ):
        super().__init__()
        self.models = nn.ModuleList()
        self.sha256 = []
        for path in checkpoints:
            net, sha256 = (load_fold or build_and_load)(make_network, path)
            self.sha256.append(sha256)
            self.models.append(net.eval())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = torch.cat([torch.sigmoid(m(x)) for m in self.models], dim=1)
        return torch.cat([probs.mean(1, keepdim=True), probs], dim=1)


def hand_scores(items: Sequence[dict]) -> dict:
    """Per-patient hand score: the mean of its bones' scores; items carry patient_id, score (and label)."""
    hands: dict = {}
    for it in items:
        hands.setdefault(it["patient_id"], {"scores": [], "label": it.get("label")})["scores"].append(
            float(it["score"])
        )
    return {pid: {"score": sum(h["scores"]) / len(h["scores"]), "label": h["label"]} for pid, h in hands.items()}


def predict(network, inferer, dataloader, device) -> list[dict]:
    """One row per bone: patient_id, bone, label (None when the datalist has none), score, fold probabilities."""
    rows = []
    with torch.no_grad():
        for batch in dataloader:
            probs = inferer(batch["image"].to(device), network).cpu()
            for i in range(probs.shape[0]):
                label = batch["label"][i] if "label" in batch else None
                rows.append(
                    {
                        "patient_id": batch["patient_id"][i],
                        "bone": batch["bone"][i],
                        "label": None if label is None else int(label),
                        "score": float(probs[i, 0]),
                        "fold_probabilities": [float(v) for v in probs[i, 1:]],
                    }
                )
    return rows


def infer(network, inferer, dataloader, device, output_dir) -> str:
    """Write ``output_dir/scores_bones.csv`` (score and fold probabilities per bone) and
    ``output_dir/scores_hands.csv`` (the mean of each patient's bones); returns the folder."""
    rows = predict(network, inferer, dataloader, device)
    os.makedirs(output_dir, exist_ok=True)
    n_folds = max((len(r["fold_probabilities"]) for r in rows), default=0)
    with open(os.path.join(output_dir, "scores_bones.csv"), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["patient_id", "bone", "score"] + [f"fold{k}" for k in range(n_folds)])
        for r in rows:
            out.writerow(
                [r["patient_id"], r["bone"], f"{r['score']:.6f}"] + [f"{p:.6f}" for p in r["fold_probabilities"]]
            )
    with open(os.path.join(output_dir, "scores_hands.csv"), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["patient_id", "score"])
        for pid, hand in hand_scores(rows).items():
            out.writerow([pid, f"{hand['score']:.6f}"])
    return output_dir


def _auroc(scores, labels) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(set(labels)) == 2 else None


def evaluate(network, inferer, dataloader, device, output_dir) -> dict:
    """AUROC of the ensemble score per bone and per hand; writes ``output_dir/metrics.json``."""
    items = predict(network, inferer, dataloader, device)
    per_bone = {}
    for bone in sorted({it["bone"] for it in items}):
        sub = [it for it in items if it["bone"] == bone]
        per_bone[bone] = _auroc([it["score"] for it in sub], [it["label"] for it in sub])
    hands = hand_scores(items)
    result = {
        "n_bones": len(items),
        "n_hands": len(hands),
        "auroc_bone": per_bone,
        "auroc_hand": _auroc([h["score"] for h in hands.values()], [h["label"] for h in hands.values()]),
    }
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


def write_validation_metrics(evaluator, output_dir, fold) -> str:
    """``output_dir/validation_fold{fold}.json``: the fold's last validation metrics and the best one
    (empty when training was shorter than ``val_interval``)."""
    state = evaluator.state
    result = {
        "fold": int(fold),
        "metrics": {k: float(v) for k, v in state.metrics.items()},
        "best_metric": None if state.best_metric_epoch == -1 else float(state.best_metric),
    }
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, f"validation_fold{int(fold)}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    return path
