"""The packages the modules install inside Slicer: the ranges are pyproject.toml's, and the decision
of what is missing and how it is installed."""

from __future__ import annotations

import tomllib

from conftest import REPO
from RheumImagingLib import dependencies as deps


def _normalised(text: str) -> str:
    return text.replace(" ", "").lower()


def test_ranges_agree_with_pyproject():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    in_slicer = [deps.TORCH_REQUIREMENT, *deps.PIP_REQUIREMENTS]
    wanted = [text for text in declared if not text.startswith("slicer-core")]
    assert sorted(map(_normalised, in_slicer)) == sorted(map(_normalised, wanted))


def test_pydicom_range_admits_what_slicer_ships():
    """Slicer 5.8-5.10 ship pydicom 2.4.4: it must count as installed, not be replaced."""
    versions = {"pydicom": "2.4.4"}
    assert deps.missing_requirements(["pydicom>=2.4"], versions.get) == []


def test_missing_absent_and_out_of_range_only():
    versions = {"torch": "2.13.0", "monai": "1.3.2", "scikit-learn": "1.5.0"}
    missing = deps.missing_requirements(["torch>=2.2,<2.15", "monai>=1.4", "scikit-learn>=1.3", "statsmodels>=0.14"],
                                        versions.get)
    assert missing == ["monai>=1.4", "statsmodels>=0.14"]


def test_torch_goes_to_pytorchutils_the_rest_to_pip():
    torch_range, pip = deps.install_plan(["torch>=2.2,<2.15", "monai>=1.4", "onnxruntime>=1.18"])
    assert set(torch_range.split(",")) == {">=2.2", "<2.15"}
    assert pip == ["monai>=1.4", "onnxruntime>=1.18"]
    assert deps.install_plan(["monai>=1.4"]) == (None, ["monai>=1.4"])


def test_messages_name_every_package():
    missing = ["torch>=2.2,<2.15", "statsmodels>=0.14"]
    assert "statsmodels>=0.14" in deps.confirmation_text(missing) and "PyTorch extension" in deps.confirmation_text(missing)
    declined = deps.declined_message(missing)
    assert "torch" in declined and "statsmodels" in declined


def test_modules_import_without_the_packages_slicer_lacks():
    """Importing what the module files import loads none of the packages installed on first use."""
    import subprocess
    import sys

    code = ("import sys, RheumTextureLib.logic, RheumTextureLib.panel, SjogrenUSLib.logic, SjogrenUSLib.panel, "
            "SjogrenUSLib.scoring, RheumImagingLib.background, RheumImagingLib.results, "
            "RheumImagingLib.widget_support, RheumImagingLib.dependencies; "
            "print(sorted(m for m in ('torch', 'monai', 'onnxruntime', 'sklearn', 'statsmodels', 'ignite', 'skimage') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
