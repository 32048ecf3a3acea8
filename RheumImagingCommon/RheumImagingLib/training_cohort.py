""""Add to training cohort": the image shown in Slicer and its (possibly hand-corrected) curves or
segmentation become one row of a cohort folder that ``train`` reads.

Why here, Qt-free: both modules' buttons call it, and it is tested on slicer-core scenes. Rules the
user relies on: the image cell is the DICOM (or other image file) behind the volume when there is one,
else the volume is written into the cohort as NRRD; annotations are taken from the nodes as they are
now; an existing annotation or image file is never overwritten; cohort.csv is replaced atomically
(temporary file + ``os.replace``), so a crash leaves the previous table whole.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from .anatomy import BONES, SITES, US_SEGMENTS, annotation_column, image_column
from .annotations import ImageGeometry, write_curves, write_segmentation
from .cohort_folder import SPACING_COLUMN
from .errors import InputError
from .imageio import ATTR, read_image

HAND_COLUMNS = ("patient_id", "label", "image", "annotation", "age", "sex", SPACING_COLUMN)
ULTRASOUND_COLUMNS = ("patient_id", "label", *map(image_column, SITES), *map(annotation_column, SITES),
                      SPACING_COLUMN)
_READABLE = (".dcm", ".dicom", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".nrrd")


def add_hand(cohort_dir, *, volume_node, curves: dict, patient_id: str, label: int | None, age=None, sex=None,
             file_for_instance=None) -> dict:
    """Append one radiograph and its MC2-MC4 closed curves to ``cohort_dir``; returns the row appended.

    ``curves``: name -> ``vtkMRMLMarkupsClosedCurveNode`` (control points as they are now, in world RAS).
    ``file_for_instance``: DICOM instance UID -> file (default: Slicer's DICOM database, when there is one).
    """
    cohort_dir = Path(cohort_dir)
    patient_id = _patient(patient_id)
    missing = [b for b in BONES if b not in curves]
    unknown = sorted(set(curves) - set(BONES))
    if missing or unknown:
        raise InputError(None, f"give the curves {', '.join(BONES)}" + (f"; missing {', '.join(missing)}"
                         if missing else "") + (f"; unknown {', '.join(unknown)}" if unknown else ""))
    header, rows = _read_table(cohort_dir, HAND_COLUMNS)
    annotation = cohort_dir / "images" / f"{_safe(patient_id)}.mrk.json"
    _refuse_existing(annotation)
    with _created_files() as created:
        image, geometry, spacing = _image_cell(cohort_dir, volume_node, _safe(patient_id), file_for_instance, created)
        if any(_same_file(cohort_dir, r.get("image"), image) for r in rows):
            raise InputError(image, f"is already in {cohort_dir / 'cohort.csv'}; each image is added once")
        pixels = {name: _curve_pixels(node, volume_node) for name, node in curves.items()}
        created.append(write_curves(annotation, {b: pixels[b] for b in BONES}, geometry))
        row = {"patient_id": patient_id, "label": _label(label), "image": _relative(cohort_dir, image),
               "annotation": _relative(cohort_dir, annotation), "age": _text(age), "sex": _text(sex),
               SPACING_COLUMN: _text(spacing)}
        _write_table(cohort_dir, header, [*rows, row])
    return row


def add_ultrasound(cohort_dir, *, volume_node, segmentation_node, patient_id: str, site: str, label: int | None,
                   file_for_instance=None) -> dict:
    """Fill one site's image and annotation cells of the patient's row (created when new) with the volume and
    its segmentation as it is now; returns that row. Filled cells are never replaced."""
    cohort_dir = Path(cohort_dir)
    patient_id = _patient(patient_id)
    if site not in SITES:
        raise InputError(None, f"site must be one of {', '.join(SITES)}, not {site!r}")
    header, rows = _read_table(cohort_dir, ULTRASOUND_COLUMNS)
    row = next((r for r in rows if r.get("patient_id") == patient_id), None)
    image_col, annotation_col = image_column(site), annotation_column(site)
    if row is not None:
        filled = [c for c in (image_col, annotation_col) if (row.get(c) or "").strip()]
        if filled:
            raise InputError(cohort_dir / "cohort.csv", f"patient {patient_id} already has {', '.join(filled)} "
                                                        f"({row[filled[0]]}); it is never replaced")
        if label is not None and (row.get("label") or "").strip() not in ("", _label(label)):
            raise InputError(cohort_dir / "cohort.csv", f"patient {patient_id} has label {row['label']}, not {label}")
    stem = f"{_safe(patient_id)}_{site}"
    annotation = cohort_dir / "images" / f"{stem}.seg.nrrd"
    _refuse_existing(annotation)
    masks = _segment_masks(segmentation_node, volume_node)
    with _created_files() as created:
        image, geometry, spacing = _image_cell(cohort_dir, volume_node, stem, file_for_instance, created)
        created.append(write_segmentation(annotation, masks, geometry))
        if row is None:
            row = dict.fromkeys(header, "")
            row["patient_id"] = patient_id
            rows.append(row)
        row.update({image_col: _relative(cohort_dir, image), annotation_col: _relative(cohort_dir, annotation)})
        if label is not None:
            row["label"] = _label(label)
        if spacing is not None:
            if (row.get(SPACING_COLUMN) or "").strip() not in ("", _text(spacing)):
                raise InputError(cohort_dir / "cohort.csv", f"patient {patient_id} has {SPACING_COLUMN} "
                                 f"{row[SPACING_COLUMN]}, this image {spacing:g} (one spacing per patient row)")
            row[SPACING_COLUMN] = _text(spacing)
        _write_table(cohort_dir, header, rows)
    return dict(row)


# ------------------------------------------------------------------ the image cell
def _image_cell(cohort_dir: Path, volume_node, stem: str, file_for_instance, created: list):
    """(image file, its geometry as training will see it, the user-given spacing or None)."""
    source = _source_file(volume_node, file_for_instance)
    if source is None:
        source = _write_volume(cohort_dir / "images" / f"{stem}.nrrd", volume_node)
        created.append(source)
    image = read_image(source)
    if image.pixels.shape != ImageGeometry.of_volume(volume_node).shape:
        raise InputError(source, f"holds a {image.pixels.shape[1]} x {image.pixels.shape[0]} image, the volume "
                                 f"{volume_node.GetName()!r} another size; add the volume as shown")
    user = ImageGeometry.of_volume(volume_node).user_spacing_mm if not image.calibrated else None
    return source, ImageGeometry.of_image(image, user), user


def _source_file(volume_node, file_for_instance) -> Path | None:
    """The file behind a volume: what our loader recorded, the DICOM instance, or its storage file."""
    recorded = volume_node.GetAttribute(ATTR + "SourceFile")
    if recorded and Path(recorded).is_file():
        return Path(recorded)
    uids = (volume_node.GetAttribute("DICOM.instanceUIDs") or "").split()
    if uids:
        lookup = file_for_instance or _dicom_database_lookup()
        path = lookup(uids[0]) if lookup else None
        if path and Path(path).is_file():
            return Path(path)
    storage = volume_node.GetStorageNode()
    name = storage.GetFileName() if storage is not None else None
    if name and Path(name).is_file() and Path(name).name.lower().endswith(_READABLE) \
            and not volume_node.GetModifiedSinceRead():
        return Path(name)
    return None


def _dicom_database_lookup():
    try:
        import slicer

        return slicer.dicomDatabase.fileForInstance
    except AttributeError:  # slicer-core, no DICOM database
        return None


def _write_volume(path: Path, volume_node) -> Path:
    """The volume as a single-slice NRRD in the cohort (calibrated spacing kept; an uncalibrated one at
    1 mm, its user-given spacing going to the row's pixel_spacing_mm)."""
    import slicer

    from .annotations import SPACING_CALIBRATED
    from .imageio import array_from_volume, volume_from_array
    from .scene import new_scene

    _refuse_existing(path)
    geometry = ImageGeometry.of_volume(volume_node)
    calibrated = geometry.spacing_mm if geometry.spacing_source == SPACING_CALIBRATED else None
    scene = new_scene()
    copy = volume_from_array(scene, array_from_volume(volume_node), calibrated, path.stem)
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    scene.AddNode(storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    storage.SetFileName(str(path))
    storage.SetUseCompression(True)
    if not storage.WriteData(copy):
        raise InputError(path, f"could not write the volume {volume_node.GetName()!r}")
    return path


# ------------------------------------------------------------------ annotations from nodes
def _curve_pixels(curve_node, volume_node) -> np.ndarray:
    """The curve's control points (world RAS, hand edits included) in the volume's pixels (col, row)."""
    import vtk

    n = curve_node.GetNumberOfControlPoints()
    if n < 3:
        raise InputError(None, f"curve {curve_node.GetName()!r} has {n} control point(s); a closed curve needs 3")
    ras_to_ijk = vtk.vtkMatrix4x4()
    volume_node.GetRASToIJKMatrix(ras_to_ijk)
    transform = volume_node.GetParentTransformNode()
    world_to_volume = vtk.vtkGeneralTransform()
    if transform is not None:
        transform.GetTransformFromWorld(world_to_volume)
    points = []
    for i in range(n):
        world = [0.0, 0.0, 0.0]
        curve_node.GetNthControlPointPositionWorld(i, world)
        ras = world_to_volume.TransformPoint(world)
        points.append(ras_to_ijk.MultiplyPoint((*ras, 1.0))[:2])
    return np.asarray(points)


def _segment_masks(segmentation_node, volume_node) -> dict[str, np.ndarray]:
    """Each known segment (anatomy.US_SEGMENTS) as it is now, on the volume's pixel grid."""
    import slicer
    import vtk

    from .imageio import array_from_volume

    segmentation = segmentation_node.GetSegmentation()
    names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    masks = {}
    scene = volume_node.GetScene()
    for name in (n for n in US_SEGMENTS if n in names):
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(segmentation.GetSegmentIdBySegmentName(name))
        labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", f"{name} export")
        try:
            if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                    segmentation_node, ids, labelmap, volume_node):
                raise InputError(segmentation_node.GetName(), f"segment {name!r} could not be exported")
            masks[name] = array_from_volume(labelmap) > 0
        finally:
            scene.RemoveNode(labelmap)
    if not any(m.any() for m in masks.values()):
        raise InputError(segmentation_node.GetName(), f"holds none of the segments {', '.join(US_SEGMENTS)} "
                                                      f"(it holds: {', '.join(names) or 'nothing'})")
    return masks


# ------------------------------------------------------------------ cohort.csv
def _read_table(cohort_dir: Path, columns: tuple[str, ...]) -> tuple[list[str], list[dict]]:
    path = cohort_dir / "cohort.csv"
    if not path.exists():
        return list(columns), []
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = list(reader)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(path, f"unreadable cohort table ({exc})") from None
    if "patient_id" not in header:
        raise InputError(path, "has no patient_id column; not a cohort table")
    return header + [c for c in columns if c not in header], rows


def _write_table(cohort_dir: Path, header: list[str], rows: list[dict]) -> None:
    """cohort.csv replaced atomically: a temporary file beside it, then ``os.replace``."""
    cohort_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".cohort.", suffix=".csv", dir=cohort_dir)
    try:
        with os.fdopen(fd, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=header, lineterminator="\n", extrasaction="ignore")
            writer.writeheader()
            writer.writerows([{c: r.get(c, "") or "" for c in header} for r in rows])
        os.replace(tmp, cohort_dir / "cohort.csv")
    finally:
        Path(tmp).unlink(missing_ok=True)


@contextlib.contextmanager
def _created_files() -> Iterator[list]:
    """Files written by one "add": removed again when the add fails, so nothing half-added remains."""
    files: list = []
    try:
        yield files
    except BaseException:
        for path in files:
            Path(path).unlink(missing_ok=True)
        raise


def _refuse_existing(path: Path) -> None:
    if path.exists():
        raise InputError(path, "already exists; an annotation or image in the cohort is never overwritten")


def _same_file(cohort_dir: Path, cell: str | None, image: Path) -> bool:
    return bool((cell or "").strip()) and (cohort_dir / cell.strip()).resolve() == image.resolve()


def _relative(cohort_dir: Path, path: Path) -> str:
    try:
        return Path(os.path.relpath(Path(path).resolve(), cohort_dir.resolve())).as_posix()
    except ValueError:  # another drive (Windows): absolute
        return Path(path).resolve().as_posix()


def _patient(patient_id) -> str:
    text = str(patient_id or "").strip()
    if not text:
        raise InputError(None, "give a patient ID")
    return text


def _label(label) -> str:
    if label is None:
        return ""
    if str(label) not in ("0", "1"):
        raise InputError(None, f"label must be 1 (case), 0 (control) or empty, not {label!r}")
    return str(int(label))


def _text(value) -> str:
    return "" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
