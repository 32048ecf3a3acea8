"""The module panels bind in a real Slicer 5.8-5.10: every widget a .ui binds with the
``SlicerParameterName`` property gets a parameter whose annotation one of Slicer's own GUI
connectors accepts for that widget class (otherwise ``connectGui`` raises in ``setup()``, on
every ``enter()`` and after every scene close, and nothing binds).

The rules are those of ``Base/Python/slicer/parameterNodeWrapper/guiConnectors.py`` at the
Slicer tags v5.8.1 and v5.10.0 (``canRepresent`` of each connector; line numbers below).
The module files import slicer/qt at the top, so the parameter class is read with ``ast``
and its annotations evaluated with the module's own Qt-free imports and constants.
"""

from __future__ import annotations

import ast
import enum
import pathlib
import xml.etree.ElementTree as ET
from typing import Annotated, get_args, get_origin

import pytest

from conftest import REPO

UI_MODULES = ["RheumTexture", "SjogrenUS"]
LIB_PREFIXES = ("RheumImagingLib", "RheumTextureLib", "SjogrenUSLib")


class Choice:
    """Stand-in for ``slicer.parameterNodeWrapper.Choice`` (validators.py v5.8.1 lines 126-137)."""

    def __init__(self, choices):
        self.choices = list(choices)


class _Node:
    """Stand-in for a vtkMRMLNode subclass (slicer-core's classes are real ones, used when present)."""


def _node_classes():
    import slicer

    return {name: getattr(slicer, name) for name in dir(slicer) if name.startswith("vtkMRML")}, slicer.vtkMRMLNode


def _base_and_annotations(annotation):
    if get_origin(annotation) is Annotated:
        base, *extra = get_args(annotation)
        return base, extra
    return annotation, []


PATH_TYPES = (pathlib.Path, pathlib.PosixPath, pathlib.WindowsPath,
              pathlib.PurePath, pathlib.PurePosixPath, pathlib.PureWindowsPath)


def _combo_ok(base, extra, default):
    # QComboBoxToStringableConnector: v5.8.1 lines 357-368 / v5.10.0 lines 420-431 (needs a Choice annotation,
    # else create() raises "requires the Choice annotation"); QComboBoxToEnumConnector: v5.8.1 line 406 /
    # v5.10.0 line 469. A default outside the choices fails Choice.validate (validators.py v5.8.1 line 136).
    if isinstance(base, type) and issubclass(base, enum.Enum):
        return True
    choices = [a for a in extra if isinstance(a, Choice)]
    return base in (int, float, str, bool) and bool(choices) and (default is None or default in choices[0].choices)


#: widget class -> (rule, where Slicer states it). Both tags agree on each rule as far as this test uses it
#: (v5.10.0 also accepts int for a QDoubleSpinBox; float, accepted by both, is what the rule requires).
RULES = {
    "ctkPathLineEdit": (lambda base, extra, default, node: base in PATH_TYPES,
                        "ctkPathLineEditToPathConnector: v5.8.1 line 608, v5.10.0 line 676"),
    "ctkDirectoryButton": (lambda base, extra, default, node: base in PATH_TYPES,
                           "ctkDirectoryButtonToPathConnector: v5.8.1 lines 641-647, v5.10.0 lines 709-715"),
    "QComboBox": (lambda base, extra, default, node: _combo_ok(base, extra, default),
                  "QComboBoxToStringableConnector/QComboBoxToEnumConnector: v5.8.1 lines 357-368, 406; "
                  "v5.10.0 lines 420-431, 469"),
    "ctkComboBox": (lambda base, extra, default, node: _combo_ok(base, extra, default),
                    "as QComboBox"),
    "QLineEdit": (lambda base, extra, default, node: base is str,
                  "QLineEditToStrConnector: v5.8.1 line 455, v5.10.0 line 518"),
    "QDoubleSpinBox": (lambda base, extra, default, node: base is float,
                       "QDoubleSpinBoxCtkSliderWidgetToFloatConnector: v5.8.1 line 292, v5.10.0 line 343"),
    "ctkSliderWidget": (lambda base, extra, default, node: base is float, "as QDoubleSpinBox"),
    "QSpinBox": (lambda base, extra, default, node: base is int,
                 "QSliderOrSpinBoxToIntConnector: v5.8.1 line 228, v5.10.0 line 279"),
    "QSlider": (lambda base, extra, default, node: base is int, "as QSpinBox"),
    "QCheckBox": (lambda base, extra, default, node: base is bool,
                  "QCheckBoxToBoolConnector: v5.8.1 line 159, v5.10.0 line 165"),
    "qMRMLNodeComboBox": (lambda base, extra, default, node: isinstance(base, type) and issubclass(base, node),
                          "qMRMLNodeComboBoxToNodeConnector: v5.8.1 line 680, v5.10.0 line 748"),
}


def bound_widgets(ui_path: pathlib.Path) -> dict[str, str]:
    """Parameter name -> widget class for each widget with a SlicerParameterName property."""
    bound = {}
    for widget in ET.parse(ui_path).getroot().iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                bound[prop.findtext("string")] = widget.get("class")
    return bound


def parameter_fields(module_path: pathlib.Path) -> dict[str, tuple]:
    """Field name -> (annotation, default) of the module's @parameterNodeWrapper class."""
    tree = ast.parse(module_path.read_text())
    nodes, _ = _node_classes()
    namespace = {"pathlib": pathlib, "Annotated": Annotated, "Choice": Choice, **nodes}
    for statement in tree.body:  # the module's Qt-free imports and constants, as Slicer would see them
        if isinstance(statement, ast.ImportFrom) and statement.module.startswith(LIB_PREFIXES) \
                or isinstance(statement, ast.Assign):
            exec(compile(ast.Module([statement], []), str(module_path), "exec"), namespace)
    wrapped = [c for c in tree.body if isinstance(c, ast.ClassDef)
               and any(ast.unparse(d) == "parameterNodeWrapper" for d in c.decorator_list)]
    assert len(wrapped) == 1, f"{module_path.name}: expected one @parameterNodeWrapper class"
    fields = {}
    for item in wrapped[0].body:
        if isinstance(item, ast.AnnAssign):
            annotation = eval(ast.unparse(item.annotation), namespace)
            default = eval(ast.unparse(item.value), namespace) if item.value is not None else None
            fields[item.target.id] = (annotation, default)
    return fields


@pytest.mark.parametrize("module", UI_MODULES)
def test_every_bound_widget_gets_a_type_slicer_connects(module):
    ui_path = REPO / module / "Resources" / "UI" / f"{module}.ui"
    bound = bound_widgets(ui_path)
    fields = parameter_fields(REPO / module / f"{module}.py")
    _, node_base = _node_classes()
    assert len(bound) >= 5, "the .ui binds (almost) nothing: the check would be empty"
    for name, widget_class in bound.items():
        assert name in fields, f"{ui_path.name}: {name} is bound but not a parameter"
        assert widget_class in RULES, f"{widget_class} has no connector rule here; add Slicer's"
        rule, where = RULES[widget_class]
        annotation, default = fields[name]
        base, extra = _base_and_annotations(annotation)
        assert rule(base, extra, default, node_base), \
            f"{module}.{name}: {annotation!r} cannot bind a {widget_class} ({where})"


def test_the_rules_reject_what_used_to_break_the_panels():
    """The annotations the panels had before (str for paths and combo boxes) fail the rules."""
    _, node_base = _node_classes()
    assert not RULES["ctkPathLineEdit"][0](str, [], "", node_base)
    assert not RULES["QComboBox"][0](str, [], "F", node_base)
    assert not RULES["QComboBox"][0](str, [Choice(["F", "M"])], "X", node_base)
    assert RULES["QComboBox"][0](str, [Choice(["F", "M"])], "F", node_base)


def test_an_empty_path_field_is_no_choice():
    """Slicer stores an empty Path field as Path() == '.'; that is not a bundle folder the user picked."""
    from RheumImagingLib.widget_support import chosen_path

    assert chosen_path(pathlib.Path()) is None
    assert chosen_path(pathlib.Path("")) is None
    assert chosen_path("") is None and chosen_path(None) is None
    assert chosen_path(pathlib.Path("/data/bundles")) == pathlib.Path("/data/bundles")


def test_progress_shows_stage_and_percent():
    from RheumImagingLib.widget_support import progress_text

    assert progress_text("Contouring metacarpals 2-4", 0.1) == (10, "Contouring metacarpals 2-4 (10%)")
    assert progress_text("Done", 1.0) == (100, "Done")


def test_corrections_only_for_imaged_glands():
    """'Apply corrections' after scoring two glands leaves the never-imaged ones empty."""
    from SjogrenUSLib.panel import correction_controls, pending_corrections
    from SjogrenUSLib.results import PatientResult, SiteResult

    patient = PatientResult("P", sites={
        "mucosa": SiteResult("mucosa", echogenicity="homogeneous", measured_echogenicity="homogeneous"),
        "parotid_left": SiteResult("parotid_left", grade=2, measured_grade=2),
        "parotid_right": SiteResult("parotid_right", grade=1, measured_grade=1)})
    grades = {"parotid_left": 3, "parotid_right": 1, "submandibular_left": 0, "submandibular_right": 0}
    assert correction_controls(patient) == ({"parotid_left": 2, "parotid_right": 1}, "homogeneous")
    assert pending_corrections(patient, grades, "homogeneous") == ({"parotid_left": 3}, None)
    assert pending_corrections(patient, grades, "heterogeneous_hyperechoic")[1] == "heterogeneous_hyperechoic"
    del patient.sites["mucosa"]
    assert pending_corrections(patient, grades, "heterogeneous_hyperechoic") == ({"parotid_left": 3}, None)


def test_site_map_reads_each_sites_selector():
    import types

    from SjogrenUSLib.panel import SITE_PARAMETERS, chosen_volumes

    node = types.SimpleNamespace(**{f"{name}Volume": None for name in SITE_PARAMETERS.values()})
    node.parotidRightVolume = "volume B"
    node.mucosaVolume = "volume A"
    assert chosen_volumes(node) == {"mucosa": "volume A", "parotid_right": "volume B"}
    assert chosen_volumes(None) == {}
