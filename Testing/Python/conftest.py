"""Shared fixtures. Heavy ones (phantom cohorts, trained test weights) are built once
per session and reused, so `make test` stays within minutes on two CPU cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def scene():
    """A fresh slicer-core MRML scene with the module logics Slicer registers."""
    from RheumImagingLib.scene import new_scene

    return new_scene()
