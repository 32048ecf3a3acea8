"""The modules' in-Slicer self-tests (``RheumTextureTest``, ``SjogrenUSTest``) pass offline.

The module files import Slicer's GUI packages at the top, so the test classes are taken out with
``ast`` and run as plain unittest cases on a slicer-core scene, with the module logic wrapping the
library logic as in Slicer. Nothing is downloaded: the images are phantoms written on the spot (by
RheumImagingDemo, from the source tree; an installed extension has none, and says so).
Test_pydicom24.py runs this file again under pydicom 2.4 (what Slicer ships).
"""

from __future__ import annotations

import ast
import logging
import types
import unittest

import pytest

from conftest import REPO


def _self_test_case(module, scene, monkeypatch, base=unittest.TestCase):
    """``<module>Test`` taken out of the module file, on ``scene``, with ``base`` as ScriptedLoadableModuleTest."""
    import importlib

    tree = ast.parse((REPO / module / f"{module}.py").read_text())
    test_class = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == f"{module}Test"]
    assert test_class, f"{module}.py has no {module}Test"
    lib_logic = getattr(importlib.import_module(f"{module}Lib.logic"), f"{module}Logic")
    namespace = {"logging": logging, "slicer": types.SimpleNamespace(mrmlScene=scene),
                 "ScriptedLoadableModuleTest": base,
                 f"{module}Logic": type("SlicerLogic", (), {"__init__": lambda self: setattr(self, "lib", lib_logic(scene))})}
    exec(compile(ast.Module(test_class, []), f"{module}.py", "exec"), namespace)
    case = namespace[f"{module}Test"]
    monkeypatch.setattr(case, "setUp", lambda self: scene.Clear(0))
    return case


@pytest.mark.parametrize("module", ["RheumTexture", "SjogrenUS"])
def test_in_slicer_self_test_passes_offline(module, scene, monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise OSError("the self-test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    import pydicom.data

    # Slicer has no pydicom-data package: its test files would be downloaded.
    monkeypatch.setattr(pydicom.data, "get_testdata_file", no_network)
    monkeypatch.setattr(pydicom.data, "get_testdata_files", no_network)
    case = _self_test_case(module, scene, monkeypatch)
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(case)
    assert suite.countTestCases() >= 1
    result = unittest.TestResult()
    suite.run(result)
    assert result.wasSuccessful(), [text for _, text in result.errors + result.failures]


@pytest.mark.parametrize("module", ["RheumTexture", "SjogrenUS"])
def test_reload_and_test_without_the_phantoms_says_why_and_passes(module, scene, monkeypatch):
    """An installed extension has no RheumImagingDemo: *Reload and Test* (``runTest``) says the self-test needs
    the source tree and returns, instead of failing on an import."""
    import sys

    shown = []

    class SlicerTest(unittest.TestCase):
        def delayDisplay(self, message, msec=None):  # noqa: N802 (Slicer's name)
            shown.append(message)

    monkeypatch.setitem(sys.modules, "RheumImagingDemo", None)  # import fails, find_spec gives None
    case = _self_test_case(module, scene, monkeypatch, base=SlicerTest)
    case().runTest()
    assert len(shown) == 1 and "source tree" in shown[0] and "RheumImagingDemo" in shown[0], shown
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 0
