"""MRML scenes outside the Slicer application (slicer-core) and inside it.

A bare ``vtkMRMLScene`` knows no markups, segmentation or table storage; the Slicer
application registers those through its module logics. ``new_scene`` does the same so
that the modules' logic, the command line and the tests all work on a real scene.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import slicer

from .errors import InputError

PROVENANCE_PREFIX = "RheumImaging."

_MODULE_LOGICS = (
    "vtkSlicerMarkupsLogic",
    "vtkSlicerSegmentationsModuleLogic",
    "vtkSlicerTablesLogic",
    "vtkSlicerSubjectHierarchyModuleLogic",
)


def _register_module_logics(scene) -> None:
    app_logic = slicer.vtkMRMLApplicationLogic()
    app_logic.SetMRMLScene(scene)
    logics = [app_logic]
    for name in _MODULE_LOGICS:
        logic = getattr(slicer, name)()
        if hasattr(logic, "SetMRMLApplicationLogic"):
            logic.SetMRMLApplicationLogic(app_logic)
        logic.SetMRMLScene(scene)
        logics.append(logic)
    scene._rheum_logics = logics  # the logics must live as long as the scene


def new_scene():
    """A scene on which markups, segmentations, tables and volumes can be stored."""
    scene = slicer.vtkMRMLScene()
    _register_module_logics(scene)
    return scene


def read_node(path: str | os.PathLike, node_class: str, storage_class: str, what: str):
    """A node read from ``path`` by Slicer's own storage node (``storage_class``), in a scene of its own
    (kept alive with the node); InputError naming the file when Slicer cannot read it as ``what``."""
    scene = new_scene()
    node = scene.AddNewNodeByClass(node_class)
    storage = getattr(slicer, storage_class)()
    scene.AddNode(storage)
    storage.SetFileName(str(path))
    if hasattr(storage, "SetSingleFile"):
        storage.SetSingleFile(True)
    if not storage.ReadData(node):
        raise InputError(path, f"Slicer could not read this {what}")
    node._rheum_scene = scene
    return node


def application_logic(scene):
    return scene._rheum_logics[0]


def set_provenance(node, **attributes) -> None:
    """Record where a result came from as node attributes (saved with the scene); values
    that are not text (numbers, lists of checksums) are stored as JSON."""
    for key, value in attributes.items():
        text = "" if value is None else value if isinstance(value, str) else json.dumps(value)
        node.SetAttribute(PROVENANCE_PREFIX + key, text)


def provenance(node) -> dict[str, str]:
    names = node.GetAttributeNames() or ()
    return {n[len(PROVENANCE_PREFIX):]: node.GetAttribute(n) for n in names if n.startswith(PROVENANCE_PREFIX)}


def _dicom_study_item(sh, volume) -> int:
    """The study (or patient) item holding a volume that Slicer's DICOM browser loaded, else 0.

    Slicer puts such a series under its DICOM patient and study items (Modules/Scripted/DICOMLib/
    DICOMPlugin.py v5.8.1 ``addSeriesInSubjectHierarchy``, line 197) and tags the volume with
    ``DICOM.instanceUIDs``.
    """
    item = sh.GetItemByDataNode(volume) if volume is not None and volume.GetAttribute("DICOM.instanceUIDs") else 0
    parent = sh.GetItemParent(item) if item else 0
    return parent if parent and parent != sh.GetSceneItemID() else 0


def place_under_patient(scene, node, patient: str, study: str | None = None, near=None) -> int:
    """Put ``node`` under the patient (and study) item of the subject hierarchy.

    With ``near`` (the input volume) loaded through Slicer's DICOM browser, ``node`` goes under that
    volume's existing DICOM study instead, and the volume stays where it is.
    """
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    parent = _dicom_study_item(sh, near)
    if parent:
        item = sh.GetItemByDataNode(node)
        if item and node is not near:
            sh.SetItemParent(item, parent)
        return item or sh.CreateItem(parent, node)
    parent = sh.GetItemChildWithName(sh.GetSceneItemID(), patient)
    if not parent:
        parent = sh.CreateSubjectItem(sh.GetSceneItemID(), patient)
    if study:
        study_item = sh.GetItemChildWithName(parent, study)
        parent = study_item or sh.CreateStudyItem(parent, study)
    item = sh.GetItemByDataNode(node)
    if item:
        sh.SetItemParent(item, parent)
    else:
        item = sh.CreateItem(parent, node)
    return item


def patient_of(scene, node) -> str | None:
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene)
    item = sh.GetItemByDataNode(node)
    while item and item != sh.GetSceneItemID():
        if sh.GetItemLevel(item) == "Patient":
            return sh.GetItemName(item)
        item = sh.GetItemParent(item)
    return None


def table_row(table, name: str) -> int:
    """Index of the row whose first cell is ``name`` (result tables are keyed by their first column)."""
    for row in range(table.GetNumberOfRows()):
        if table.GetCellText(row, 0) == name:
            return row
    raise KeyError(f"{table.GetName()} has no row {name!r}")


def _storable_nodes(scene):
    nodes = scene.GetNodesByClass("vtkMRMLStorableNode")
    for i in range(nodes.GetNumberOfItems()):
        node = nodes.GetItemAsObject(i)
        if node.GetSaveWithScene() and not node.GetHideFromEditors():
            yield node


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "node"


def save_scene(scene, directory: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``scene.mrml`` and every storable node's file into ``directory``.

    Existing files are never replaced unless ``overwrite`` is set; the check happens
    before anything is written, so a refused save leaves the folder untouched.
    """
    directory = Path(directory).resolve()  # storage paths are written relative to the scene file
    plan = []
    used = set()
    for node in _storable_nodes(scene):
        if node.GetStorageNode() is None and not node.AddDefaultStorageNode():
            continue
        storage = node.GetStorageNode()
        ext = storage.GetDefaultWriteFileExtension()
        stem = _safe_name(node.GetName())
        candidate = f"{stem}.{ext}"
        k = 1
        while candidate in used:
            k += 1
            candidate = f"{stem}_{k}.{ext}"
        used.add(candidate)
        plan.append((node, storage, directory / candidate))
    targets = [directory / "scene.mrml"] + [p for _, _, p in plan]
    existing = [str(p) for p in targets if p.exists()]
    if existing and not overwrite:
        raise InputError(directory, f"would overwrite existing files ({', '.join(existing[:3])}"
                                    f"{'...' if len(existing) > 3 else ''}); choose an empty folder or allow overwrite")
    directory.mkdir(parents=True, exist_ok=True)
    for node, storage, path in plan:
        storage.SetFileName(str(path))
        if not storage.WriteData(node):
            raise InputError(path, f"could not write node {node.GetName()!r}")
    scene.SetRootDirectory(str(directory))
    scene.SetURL(str(directory / "scene.mrml"))
    if not scene.Commit():
        raise InputError(directory / "scene.mrml", "could not write the scene file")
    return directory / "scene.mrml"


def save_bundle(scene, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the scene as a Slicer data bundle (.mrb), as Slicer's "Save scene" does."""
    import tempfile
    import zipfile

    path = Path(path)
    if path.exists() and not overwrite:
        raise InputError(path, "already exists; choose another name or allow overwrite")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / path.stem
        save_scene(scene, folder)
        tmp_zip = Path(tmp) / "bundle.mrb"
        with zipfile.ZipFile(tmp_zip, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(folder.rglob("*")):
                archive.write(file, Path(path.stem) / file.relative_to(folder))
        shutil.move(tmp_zip, path)
    return path


def load_scene(path: str | os.PathLike):
    """Read a ``.mrml`` scene or ``.mrb`` bundle into a new scene."""
    import tempfile
    import zipfile

    path = Path(path).resolve()
    if not path.exists():
        raise InputError(path, "no such scene file")
    scene = new_scene()
    if path.suffix.lower() == ".mrb":
        if not zipfile.is_zipfile(path):
            raise InputError(path, "not a Slicer data bundle (.mrb is a zip archive)")
        unpack = Path(tempfile.mkdtemp(prefix="rheum_mrb_"))
        with zipfile.ZipFile(path) as archive:
            archive.extractall(unpack)
        mrml = sorted(unpack.rglob("*.mrml"))
        if not mrml:
            raise InputError(path, "the bundle holds no .mrml scene")
        path = mrml[0]
    scene.SetURL(str(path))
    scene.SetRootDirectory(str(path.parent))
    if not scene.Connect():
        raise InputError(path, "could not be read as an MRML scene")
    return scene
