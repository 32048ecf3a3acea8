"""Python packages the modules need inside Slicer, and what to install (Qt-free; pytest covers it).

Slicer's Python has none of torch, MONAI, ONNX Runtime, scikit-learn or statsmodels. The modules
check on first use (never at import) and, with the user's consent, install torch through the
PyTorch extension's ``PyTorchUtilsLogic.installTorch`` (it picks the CUDA/CPU build; fepegar/SlicerPyTorch
PyTorchUtils/PyTorchUtils.py) and the rest with ``slicer.util.pip_install`` (Base/Python/slicer/util.py,
v5.8.1 line 3899, v5.10.0 line 3991). The version ranges are pyproject.toml's; a test checks they agree.
"""

from __future__ import annotations

import importlib.metadata
from typing import Callable

#: torch's range (pyproject.toml), handed to PyTorchUtils as ``torchVersionRequirement``.
TORCH_REQUIREMENT = "torch>=2.2,<2.15"

#: Everything else pyproject.toml lists, except slicer-core (Slicer itself). pydicom's and scipy's ranges admit
#: what Slicer 5.8-5.10 ship, so they are not reinstalled: pydicom 2.4.4 and scipy 1.13.1
#: (SuperBuild/External_python-dicom-requirements.cmake line 44, External_python-scipy.cmake line 40, both tags);
#: likewise numpy 1.26.4 and pillow 10.3.0 (v5.8.1 External_python-numpy.cmake line 41,
#: External_python-dicom-requirements.cmake line 61). ``packaging`` (for the ranges) ships with Slicer too
#: (External_python-pythonqt-requirements.cmake line 35).
PIP_REQUIREMENTS = (
    "monai>=1.4",
    "pytorch-ignite>=0.4.11",
    "pydicom>=2.4",
    "pylibjpeg>=2.0",
    "pylibjpeg-openjpeg>=2.3",
    "pylibjpeg-libjpeg>=2.1",
    "pylibjpeg-rle>=2.0",
    "numpy>=1.24",
    "scipy>=1.11",
    "scikit-learn>=1.3",
    "statsmodels>=0.14",
    "pandas>=2.0",
    "tqdm>=4.60",
    "matplotlib>=3.7",
    "pillow>=10",
    "tifffile>=2023.1",
    "scikit-image>=0.22",
    "fire>=0.5",
    "onnx>=1.16",
    "onnxruntime>=1.18",
)


def _requirement(text: str):
    try:
        from packaging.requirements import Requirement
    except ImportError:  # Slicer's Python always has pip's copy
        from pip._vendor.packaging.requirements import Requirement
    return Requirement(text)


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def missing_requirements(requirements=(TORCH_REQUIREMENT, *PIP_REQUIREMENTS),
                         version_of: Callable[[str], str | None] = _installed_version) -> list[str]:
    """The requirements that are not installed or installed outside their range (metadata only: nothing imported)."""
    missing = []
    for text in requirements:
        requirement = _requirement(text)
        version = version_of(requirement.name)
        if version is None or not requirement.specifier.contains(version, prereleases=True):
            missing.append(text)
    return missing


def install_plan(missing: list[str]) -> tuple[str | None, list[str]]:
    """``(torch version requirement for PyTorchUtils or None, requirements for pip)``."""
    torch = next((text for text in missing if _requirement(text).name == "torch"), None)
    torch_range = str(_requirement(torch).specifier) if torch else None
    return torch_range, [text for text in missing if text != torch]


def confirmation_text(missing: list[str]) -> str:
    torch_range, pip = install_plan(missing)
    lines = ["RheumImaging needs Python packages that this Slicer does not have yet:", ""]
    if torch_range is not None:
        lines.append(f"- torch{torch_range} (through the PyTorch extension, which picks the CPU or CUDA build)")
    lines += [f"- {text}" for text in pip]
    lines += ["", "Install them now? This downloads several hundred MB and can take some minutes;",
              "Slicer may need a restart afterwards."]
    return "\n".join(lines)


def declined_message(missing: list[str]) -> str:
    names = ", ".join(_requirement(text).name for text in missing)
    return (f"Not installed: {names}. Scoring and training need them; loading and viewing images does not. "
            "Press Apply again to be asked once more, or install them from the Python console with "
            "slicer.util.pip_install (torch through the PyTorch Utils module).")
