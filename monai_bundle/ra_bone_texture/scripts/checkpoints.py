"""Fold checkpoints: their file names, a safe loader and the bundle's own input error.

The bundle runs without the extension, so it carries these few lines itself. ``BundleInputError`` has
the ``path`` and ``reason`` of the extension's ``InputError``; the extension turns it into its own.

Names: fold 0 is ``models/model.pt`` (the file the model zoo's tools load into ``network_def``), folds
1-4 are ``models/model_fold1.pt`` ... ``models/model_fold4.pt``.
"""

from __future__ import annotations

import hashlib
import os

WEIGHTS_HELP = "docs/README.md, section 'Weights'"


class BundleInputError(ValueError):
    """Bad input to the bundle (missing weights, datalist, image): names the file and the reason."""

    def __init__(self, path, reason: str):
        super().__init__(path, reason)
        self.path = None if path is None else os.fspath(path)
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}" if self.path else self.reason


def checkpoint_name(fold: int) -> str:
    return "model.pt" if int(fold) == 0 else f"model_fold{int(fold)}.pt"


def fold_of(name: str) -> int:
    """The fold a checkpoint file name stands for (inverse of :func:`checkpoint_name`)."""
    base = os.path.basename(name)
    return 0 if base == "model.pt" else int(base[len("model_fold") : -len(".pt")])


def fold_checkpoints(ckpt_dir, n_folds: int = 5) -> list[str]:
    """The paths of the ``n_folds`` fold checkpoints; all must exist (a partial ensemble is refused)."""
    paths = [os.path.join(ckpt_dir, checkpoint_name(k)) for k in range(int(n_folds))]
    missing = [os.path.basename(p) for p in paths if not os.path.isfile(p)]
    if missing:
        raise BundleInputError(
            ckpt_dir,
            f"fold weights missing: {', '.join(missing)} (train the bundle or "
            f"download the weights: {WEIGHTS_HELP})",
        )
    return paths


def sha256_of(path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def load_checkpoint(network, path) -> str:
    """Load a state dict safely (``weights_only=True``) into ``network``; returns the file's sha256."""
    import torch

    if not os.path.isfile(path):
        raise BundleInputError(path, f"checkpoint not found ({WEIGHTS_HELP})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt, or pickled with arbitrary objects
        raise BundleInputError(path, f"not a loadable weights file ({exc.__class__.__name__}: {exc})") from None
    try:
        network.load_state_dict(state)
    except RuntimeError as exc:
        raise BundleInputError(path, f"weights do not fit the network: {str(exc).splitlines()[0]}") from None
    return sha256_of(path)
