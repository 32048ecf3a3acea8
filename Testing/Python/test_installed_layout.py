"""The bundles are found in an installed extension, not only in the source tree.

Slicer's ``slicerMacroBuildScriptedModule`` installs each module's scripts, with their relative paths,
into ``lib/Slicer-X.Y/qt-scripted-modules`` (CMake/SlicerMacroBuildScriptedModule.cmake v5.8.1 lines
100-105: ``INSTALL_DIR ${Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR}``; CMake/SlicerDirectories.cmake
line 144: ``${Slicer_LIB_DIR}/qt-scripted-modules``). The test builds that tree from the CMake lists
(scripts and resources as listed, bundles as the top-level install rule says) and asks the installed code
where its bundles are, and whether it runs without RheumImagingDemo (phantoms, demos), which it does not ship.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

from conftest import REPO

BUNDLES = ("metacarpal_contour", "ra_bone_texture", "sjogren_us_segmentation")
MODULES = ("RheumImagingCommon", "RheumTexture", "SjogrenUS")


def _install_tree(tmp_path):
    scripted = tmp_path / "lib" / "Slicer-5.8" / "qt-scripted-modules"
    for module in MODULES:
        text = (REPO / module / "CMakeLists.txt").read_text().replace("${MODULE_NAME}", module)
        for script in re.findall(r"^\s+([\w/.-]+\.(?:py|json))\s*$", text, re.M):
            target = scripted / script
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(REPO / module / script, target)
    top = (REPO / "CMakeLists.txt").read_text()
    rule = re.search(r"install\(DIRECTORY \$\{CMAKE_CURRENT_SOURCE_DIR\}/monai_bundle\s+"
                     r"DESTINATION \$\{Slicer_INSTALL_QTSCRIPTEDMODULES_LIB_DIR\}\s+\$\{RHEUM_IMAGING_BUNDLE_EXCLUDES\}\)",
                     top)
    assert rule, "CMakeLists.txt does not install monai_bundle/ beside the scripted modules"
    excluded = re.search(r"set\(RHEUM_IMAGING_BUNDLE_EXCLUDES (.*)\)", top).group(1)
    patterns = re.findall(r'PATTERN "([^"]+)" EXCLUDE', excluded)
    assert "models" in patterns, "trained models must not be shipped"
    shutil.copytree(REPO / "monai_bundle", scripted / "monai_bundle", ignore=shutil.ignore_patterns(*patterns))
    return scripted


def test_installed_extension_finds_its_bundles(tmp_path):
    scripted = _install_tree(tmp_path)
    code = "from RheumImagingLib.bundle import default_bundle_root; print(default_bundle_root())"
    env = {"PATH": "", "PYTHONPATH": str(scripted)}
    found = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                           check=True).stdout.strip()
    assert found == str((scripted / "monai_bundle").resolve())
    for name in BUNDLES:
        assert (scripted / "monai_bundle" / name / "configs" / "metadata.json").is_file()
        assert (scripted / "monai_bundle" / name / "scripts" / "__init__.py").is_file()
        assert (scripted / "monai_bundle" / name / "docs" / "README.md").is_file()


def test_source_tree_finds_its_bundles(monkeypatch):
    from RheumImagingLib.bundle import default_bundle_root

    monkeypatch.delenv("RHEUM_IMAGING_BUNDLES", raising=False)
    assert default_bundle_root() == (REPO / "monai_bundle").resolve()


def test_installed_extension_runs_without_the_phantoms(tmp_path):
    """What Slicer installs imports and offers its commands (``phantom`` left out) with RheumImagingDemo
    absent; the source tree's phantom generators are no part of it."""
    scripted = _install_tree(tmp_path)
    assert not [p for p in scripted.glob("*Lib/**/*") if "phantom" in p.name or "demo" in p.name]
    libs = sorted(p.relative_to(scripted).with_suffix("").as_posix().replace("/", ".")
                  for p in scripted.glob("*Lib/**/*.py") if p.name != "__init__.py")
    assert "RheumTextureLib.rheumtexture_cli" in libs and "SjogrenUSLib.sjogrenus_cli" in libs
    code = ("import importlib, sys\n"
            "sys.modules['RheumImagingDemo'] = None\n"  # not installed, even where pip installed it
            f"for name in {libs!r}:\n"
            "    importlib.import_module(name)\n"
            "from RheumTextureLib.rheumtexture_cli import main as rheumtexture\n"
            "from SjogrenUSLib.sjogrenus_cli import main as sjogrenus\n"
            "for main in (rheumtexture, sjogrenus):\n"
            "    try:\n"
            "        main(['--help'])\n"
            "    except SystemExit:\n"
            "        pass\n")
    env = {"PATH": "", "PYTHONPATH": str(scripted), "QT_QPA_PLATFORM": "offscreen"}
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.count("score") >= 2 and "phantom" not in run.stdout, run.stdout
