"""The anatomy both modules annotate: the names and label values every reader and writer shares.

Why one home: training, scoring, the phantoms and the Slicer modules must agree on what
``MC3`` or label value 2 means; a second definition would let them drift apart.
"""

from __future__ import annotations

#: Metacarpals whose texture is scored (RA); curves / segments are named so, plain labelmaps use 1, 2, 3.
BONES = ("MC2", "MC3", "MC4")

#: Ultrasound sites; cohort.csv has ``<site>_image`` and ``<site>_annotation`` columns for each.
SITES = ("mucosa", "parotid_left", "parotid_right", "submandibular_left", "submandibular_right")
GLAND_SITES = SITES[1:]

#: Ultrasound label values (0 is background), as the phantom writes them and the segmenter predicts 1-3.
US_LABELS = {1: "epithelium", 2: "submucosa", 3: "parenchyma", 4: "focus"}
US_SEGMENTS = tuple(US_LABELS[k] for k in sorted(US_LABELS))

#: Plain labelmap value k is ``names[k - 1]`` for these name tuples.
LABELMAP_NAMES = {"hand": BONES, "ultrasound": US_SEGMENTS}


def image_column(site: str) -> str:
    return f"{site}_image"


def annotation_column(site: str) -> str:
    return f"{site}_annotation"


# Standard terminology of the segments the modules write, so Slicer shows them with names and colours.
# Every code is copied from Slicer v5.8.1 Modules/Loadable/Terminologies/Resources/
# SegmentationCategoryTypeModifier-DICOM-Master.json (context name line 2; category "Tissue" SCT 85756007
# lines 7-11 with types "Connective tissue" SCT 21793004 lines 125-131, "Tissue" lines 262-268, "Bone"
# SCT 272673000 lines 294-300; category "Morphologically Altered Structure" SCT 49755003 line 343 with type
# "Inflammation" SCT 23583003 lines 452-456; category "Anatomical Structure" SCT 123037004 line 1135 with
# type "Salivary gland" SCT 385294005 lines 9051-9057) and AnatomicRegionAndModifier-DICOM-Master.json
# (context name line 2; "Hand" SCT 85562004 line 4633). The serialisation is Slicer's: vtkSlicerTerminologiesModuleLogic::SerializeTerminologyEntry
# (Modules/Loadable/Terminologies/Logic/vtkSlicerTerminologiesModuleLogic.cxx v5.8.1 lines 2053-2073).
# Nearest real codes where the list has no exact one (never invented):
# - a metacarpal: "Bone" with anatomic region "Hand" (the list has no metacarpal code);
# - mucosal epithelium: the generic "Tissue" (the list has no epithelium or oral mucosa code);
# - submucosa: "Connective tissue" (the lamina propria / submucosa is connective tissue);
# - focus (hypoechoic focus of a gland, the lymphocytic infiltrate of Sjogren's): "Inflammation".
_CATEGORY_TYPES = "Segmentation category and type - DICOM master list"
_ANATOMY = "Anatomic codes - DICOM master list"
_TISSUE = "SCT^85756007^Tissue"
_NONE = "^^"


def _terminology(category: str, type_: str, region: str = _NONE) -> str:
    return "~".join((_CATEGORY_TYPES, category, type_, _NONE, _ANATOMY, region, _NONE))


TERMINOLOGY = {
    **{bone: _terminology(_TISSUE, "SCT^272673000^Bone", "SCT^85562004^Hand") for bone in BONES},
    "epithelium": _terminology(_TISSUE, _TISSUE),
    "submucosa": _terminology(_TISSUE, "SCT^21793004^Connective tissue"),
    "parenchyma": _terminology("SCT^123037004^Anatomical Structure", "SCT^385294005^Salivary gland"),
    "focus": _terminology("SCT^49755003^Morphologically Altered Structure", "SCT^23583003^Inflammation"),
}

#: Display colours (RGB 0-1): distinct per bone; the ultrasound ones as the SjogrenUS module shows them.
COLOURS = {
    "MC2": (0.95, 0.45, 0.35), "MC3": (0.35, 0.8, 0.4), "MC4": (0.35, 0.55, 0.95),
    "epithelium": (0.95, 0.75, 0.2), "submucosa": (0.3, 0.6, 1.0), "parenchyma": (0.35, 0.85, 0.35),
    "focus": (0.85, 0.3, 0.85),
}
