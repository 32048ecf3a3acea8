"""A clear message instead of a traceback when a bundle without trained weights is run."""

from __future__ import annotations

import os

README_SECTION = "docs/README.md, section 'Weights'"


def require(*paths) -> None:
    """Stop with a message naming each missing weights file and where to get it."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise SystemExit(
            f"missing trained weights: {', '.join(missing)}. Download them with "
            f"`python -m monai.bundle download_large_files --bundle_path <this bundle>` or train the bundle "
            f"({README_SECTION})."
        )
