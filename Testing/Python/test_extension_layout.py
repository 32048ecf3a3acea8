"""The extension builds in Slicer: CMake lists every script and resource, the module
files compile, and every widget name a module's code uses exists in its .ui file."""

from __future__ import annotations

import py_compile
import re

import pytest

from conftest import REPO

MODULES = ["RheumImagingCommon", "RheumTexture", "SjogrenUS"]
UI_MODULES = ["RheumTexture", "SjogrenUS"]


def _cmake_entries(module: str) -> set[str]:
    text = (REPO / module / "CMakeLists.txt").read_text().replace("${MODULE_NAME}", module)
    return set(re.findall(r"^\s+([\w/.-]+\.(?:py|png|ui|json))\s*$", text, re.M))


@pytest.mark.parametrize("module", MODULES)
def test_cmake_lists_every_script_and_resource(module):
    root = REPO / module
    on_disk = {p.relative_to(root).as_posix() for p in root.rglob("*")
               if p.suffix in {".py", ".png", ".ui", ".json"} and "__pycache__" not in p.parts}
    assert _cmake_entries(module) == on_disk


def test_top_level_cmake_follows_extension_template():
    text = (REPO / "CMakeLists.txt").read_text()
    for key in ["EXTENSION_HOMEPAGE", "EXTENSION_CATEGORY", "EXTENSION_CONTRIBUTORS", "EXTENSION_DESCRIPTION",
                "EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS", "EXTENSION_DEPENDS", "find_package(Slicer REQUIRED)"]:
        assert key in text
    for module in MODULES:
        assert f"add_subdirectory({module})" in text
    for module in UI_MODULES:
        module_cmake = (REPO / module / "CMakeLists.txt").read_text()
        assert "slicerMacroBuildScriptedModule" in module_cmake and "slicer_add_python_unittest" in module_cmake


@pytest.mark.parametrize("module", MODULES)
def test_module_file_compiles(module, tmp_path):
    py_compile.compile(str(REPO / module / f"{module}.py"), cfile=str(tmp_path / "m.pyc"), doraise=True)


@pytest.fixture(scope="module")
def qapp():
    from PySide6.QtWidgets import QApplication

    return QApplication.instance() or QApplication([])


@pytest.mark.parametrize("module", UI_MODULES)
def test_ui_has_every_widget_the_module_uses(module, qapp):
    from PySide6.QtCore import QFile, QObject
    from PySide6.QtUiTools import QUiLoader

    ui_path = REPO / module / "Resources" / "UI" / f"{module}.ui"
    file = QFile(str(ui_path))
    assert file.open(QFile.ReadOnly)
    widget = QUiLoader().load(file)
    assert widget is not None, f"{ui_path} did not load"
    names = {child.objectName() for child in widget.findChildren(QObject)}
    used = set(re.findall(r"self\.ui\.(\w+)", (REPO / module / f"{module}.py").read_text()))
    assert used, "the widget uses no .ui names: the check would be empty"
    assert used <= names, f"missing in {ui_path.name}: {sorted(used - names)}"
    declared = set(re.findall(r"^    (\w+): ", (REPO / module / f"{module}.py").read_text(), re.M))
    for match in re.finditer(r'name="SlicerParameterName".*?<string>(\w+)</string>', ui_path.read_text(), re.S):
        assert match.group(1) in declared, f"{match.group(1)} is bound in the .ui but not a parameter"


def test_extensions_index_accepts_the_description():
    """Slicer/ExtensionsIndex scripts/check_description_files.py: the extension name (the CMake project, the
    description file's name) must not start with 'Slicer'; the repository needs a top-level LICENSE; every
    screenshot URL must resolve (none is listed until real Slicer screenshots exist)."""
    import json
    import tomllib

    project = re.search(r"^project\((\w+)\)", (REPO / "CMakeLists.txt").read_text(), re.M).group(1)
    assert not project.lower().startswith("slicer")
    description = REPO / f"{project}.json"
    assert description.is_file(), f"the ExtensionsIndex description must be named {project}.json"
    assert json.loads(description.read_text())["category"] in (REPO / "CMakeLists.txt").read_text()
    licence = (REPO / "LICENSE").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["license"] == "Apache-2.0"
    icon = re.search(r'EXTENSION_ICONURL "[^"]+/main/([^"]+)"', (REPO / "CMakeLists.txt").read_text()).group(1)
    assert (REPO / icon).is_file()
    screenshots = re.search(r'EXTENSION_SCREENSHOTURLS "([^"]*)"', (REPO / "CMakeLists.txt").read_text()).group(1)
    for url in screenshots.split():
        assert (REPO / url.split("/main/", 1)[1]).is_file(), f"{url} does not resolve to a file in the repository"
