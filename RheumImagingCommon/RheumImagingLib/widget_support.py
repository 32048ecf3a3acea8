"""Qt-free decisions the two module widgets take, so that pytest covers them."""

from __future__ import annotations

from pathlib import Path


def chosen_path(value) -> Path | None:
    """The path a user chose in a path field, or None when the field is empty.

    Slicer's parameter node stores an empty ``pathlib.Path`` field as ``Path()``, i.e. ``"."``
    (``PathSerializer.default`` returns ``self.type()``: Base/Python/slicer/parameterNodeWrapper/
    serializers.py, v5.8.1 line 329), and an emptied ``ctkPathLineEdit`` reads back as ``Path("")``,
    which is the same ``"."``. Neither is a folder the user picked.
    """
    if value is None:
        return None
    text = str(value).strip()
    return None if text in ("", ".") else Path(text)


def progress_text(stage: str, fraction: float) -> tuple[int, str]:
    """Progress bar value (0-100) and status text for a ``progress(stage, fraction)`` report."""
    percent = int(round(100 * min(max(float(fraction), 0.0), 1.0)))
    return percent, f"{stage} ({percent}%)" if percent < 100 else stage


#: the panel's cohort label choices -> the cohort.csv ``label`` (None: unknown)
COHORT_LABELS = {"unknown": None, "1 (case)": 1, "0 (control)": 0}


def cohort_folder(value) -> Path:
    """The training cohort folder the user chose; a clear error when none is."""
    from .errors import InputError

    folder = chosen_path(value)
    if folder is None:
        raise InputError(None, "choose the training cohort folder first")
    return folder


def training_cohort():
    """``RheumImagingLib.training_cohort`` (Contract E: ``add_hand``, ``add_ultrasound``)."""
    from . import training_cohort as module

    return module


def phantom_self_test_skipped(module: str) -> str | None:
    """Why ``module``'s self-test cannot run here, or None when it can. The self-tests write phantoms with
    RheumImagingDemo, which the source tree has (its ctest puts it on PYTHONPATH) and the installed
    extension does not ship, so an installed extension's *Reload and Test* says so instead of failing."""
    from .commands import DEMO_PACKAGE, demo_installed

    if demo_installed():
        return None
    return (f"{module} self-test not run: it writes phantom images with {DEMO_PACKAGE}, which is in the "
            "SlicerRheumImaging source tree, not in the installed extension. Run it from the source tree "
            "(ctest in a build of the extension, or the repository folder on PYTHONPATH).")
