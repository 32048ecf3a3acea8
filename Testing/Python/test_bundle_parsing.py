"""Parsing bundles: the extension's parser builds what MONAI's own builds, and scoring's configs parse without
MONAI's table of its classes (each build took 50-90 ms of a fresh process's first score)."""

from __future__ import annotations

from monai.bundle import ConfigParser
from monai.bundle.config_item import ComponentLocator

from conftest import REPO
from RheumImagingLib.bundle import Bundle, bundle_imports

TRANSFORMS = {"metacarpal_contour": "image_transforms", "ra_bone_texture": "preprocessing",
              "sjogren_us_segmentation": "preprocessing"}


def _kinds(transforms) -> list[str]:
    return [type(t).__qualname__ for t in getattr(transforms, "transforms", transforms)]


def test_inference_configs_parse_as_monai_parses_them_without_its_class_table(monkeypatch):
    builds = []
    table = ComponentLocator._find_classes_or_functions
    monkeypatch.setattr(ComponentLocator, "_find_classes_or_functions",
                        lambda self, modules: builds.append(1) or table(self, modules))
    ours = {name: _kinds(Bundle(REPO / "monai_bundle" / name, "inference").get(key))
            for name, key in TRANSFORMS.items()}
    assert not builds  # MONAI's own parser builds it once per bundle
    for name, key in TRANSFORMS.items():
        root = REPO / "monai_bundle" / name
        stock = ConfigParser()
        stock.read_config(str(root / "configs" / "inference.json"))
        stock["bundle_root"] = str(root)
        with bundle_imports(root):
            assert ours[name] == _kinds(stock.get_parsed_content(key))
    assert len(builds) == 3  # the stock parsers did build theirs: the count is real
