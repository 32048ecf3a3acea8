"""A clear message, before MONAI's loader fails deep inside ignite, when the trained weights are missing."""

from __future__ import annotations

import os


def require_weights(path: str) -> str:
    """Return ``path`` if it is a file; otherwise say which file is missing and where the README tells how to get it."""
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: no trained weights. Train them (docs/README.md, section 'Training') or fetch the published "
            "checkpoint (docs/README.md, section 'Weights': python -m monai.bundle download_large_files "
            "--bundle_path BUNDLE_ROOT)."
        )
    return path
