"""Image I/O and DICOM writing also work with pydicom 2.4, the version Slicer 5.8-5.10 ship.

`make install` puts pydicom 2.4.4 in ``.venv/pydicom24`` (``pip install --target``); this test
runs the image I/O tests and the phantoms' DICOM-writing tests in a child process with that
folder first on ``sys.path``. Set ``RHEUM_PYDICOM24`` to use another folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import REPO

TESTS = ["Testing/Python/test_imageio.py",
         "Testing/Python/test_radiograph_phantom.py::test_dicom_monochrome1_calibration_and_uids",
         "Testing/Python/test_ultrasound_phantom.py::test_files_load_with_us_region_calibration",
         "Testing/Python/test_module_selftests.py"]


def _pydicom24() -> Path:
    folder = Path(os.environ.get("RHEUM_PYDICOM24", REPO / ".venv" / "pydicom24"))
    if not (folder / "pydicom").is_dir():
        pytest.skip(f"pydicom 2.4 not installed in {folder} (make install puts it there)")
    return folder


def test_image_io_and_dicom_writing_under_pydicom_2_4():
    folder = _pydicom24()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(folder), *filter(None, [os.environ.get("PYTHONPATH")])]))
    version = subprocess.run([sys.executable, "-c", "import pydicom; print(pydicom.__version__)"], env=env,
                             capture_output=True, text=True, check=True).stdout.strip()
    assert version.startswith("2.4"), f"{folder} gives pydicom {version}, not 2.4"
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *TESTS],
                         cwd=REPO, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
