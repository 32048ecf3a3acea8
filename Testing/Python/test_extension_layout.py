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


def test_phantoms_and_demos_are_installed_by_pip_not_by_slicer():
    """RheumImagingDemo (phantom generators, calibration on phantoms, demos) is a pip package of its own:
    no module's CMake list, nor the top-level install rules, ship it or any phantom/demo file."""
    import tomllib

    for module in MODULES:
        shipped = _cmake_entries(module)
        assert not [e for e in shipped if any(word in e for word in ("phantom", "demo", "fbm"))], module
        assert not list((REPO / module).rglob("*phantom*"))
    top = (REPO / "CMakeLists.txt").read_text()
    assert "RheumImagingDemo" not in top
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "RheumImagingDemo" in setuptools["packages"]
    assert setuptools["package-dir"]["RheumImagingDemo"] == "RheumImagingDemo"
    for generator in ("hand_phantom.py", "us_phantom.py"):
        assert (REPO / "RheumImagingDemo" / generator).is_file()


def _is_command(path) -> bool:
    """A module file with a ``main``/``register`` function, a ``__main__`` block or an argument parser."""
    import ast

    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in ("main", "register"):
            return True
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            return True
    return any(isinstance(node, ast.Attribute) and node.attr in ("ArgumentParser", "add_parser")
               for node in ast.walk(tree))


#: the parser both tools build their subcommands into: plumbing, not a command
COMMAND_PLUMBING = "RheumImagingCommon/RheumImagingLib/commands.py"


def test_every_command_file_is_named_cli():
    """Command files are named ``*_cli.py``, and nothing else is."""
    files = [p for folder in (*MODULES, "RheumImagingDemo") for p in (REPO / folder).rglob("*.py")
             if "__pycache__" not in p.parts and p.stem not in MODULES]
    commands = {p.relative_to(REPO).as_posix() for p in files if _is_command(p)} - {COMMAND_PLUMBING}
    named = {p.relative_to(REPO).as_posix() for p in files if p.stem.endswith("_cli")}
    assert "RheumTexture/RheumTextureLib/rheumtexture_cli.py" in commands  # the check sees commands
    assert commands == named, {"commands not named *_cli.py": sorted(commands - named),
                               "named *_cli.py but no command": sorted(named - commands)}


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
