"""Annotations in the formats Slicer writes: markups curves (``.mrk.json``) and segmentations
(``.seg.nrrd``) or plain labelmaps, mapped to and from an image's pixels; and the one cache of
decoded training images (``prepare_image``).

Why: a scientist draws on a DICOM in Slicer and saves; training must read exactly that, in the
image's pixels, whatever the coordinate system the file declares. The geometry is the one
:func:`RheumImagingLib.imageio.volume_from_array` and Slicer's DICOM loader give a single 2-D image
(origin 0, IJK->RAS directions -1, -1, 1, spacing col, row): curves drawn on that volume map back.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError

SPACING_CALIBRATED = "calibrated"
SPACING_USER = "user-given"
SPACING_NONE = "none (1 mm per pixel)"

# Slicer v5.8.1 Modules/Loadable/Markups/MRML/vtkMRMLMarkupsJsonStorageNode.cxx line 48-51: the schema it
# writes and the pattern it accepts on reading (a file without it is refused, line 676-681).
MARKUPS_SCHEMA = ("https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/"
                  "Resources/Schema/markups-schema-v1.0.3.json#")
_ACCEPTED_SCHEMA = re.compile(r".*markups-schema-v1\.[0-9]+\.[0-9]+\.json#*$", re.IGNORECASE)
_CURVE_TYPES = ("ClosedCurve", "Curve")  # markups-schema-v1.0.3.json line 38 ("type" enum)
_UNITS_MM = {"mm": 1.0, "um": 1e-3}  # markups-schema-v1.0.3.json line 63 ("coordinateUnits" enum)
_SEGMENTATION_SUFFIXES = (".seg.nrrd", ".nrrd", ".nii.gz", ".nii", ".png")


# ------------------------------------------------------------------ geometry
@dataclass(frozen=True)
class ImageGeometry:
    """Where Slicer puts a 2-D image's pixels in physical space (so markups/segmentations drawn on it map back)."""

    shape: tuple[int, int]  # (rows, cols)
    spacing_mm: tuple[float, float]  # (row, col) spacing the volume has in Slicer: calibrated, user-given, or (1, 1)
    spacing_source: str  # "calibrated" | "user-given" | "none (1 mm per pixel)"

    @classmethod
    def of_image(cls, image, pixel_spacing_mm: float | None = None) -> "ImageGeometry":
        """The geometry of a :class:`~RheumImagingLib.imageio.LoadedImage`; ``pixel_spacing_mm`` (the user's)
        is used only when the image carries no calibration."""
        shape = tuple(int(n) for n in image.pixels.shape[:2])
        if image.spacing_mm is not None:
            return cls(shape, tuple(float(s) for s in image.spacing_mm), SPACING_CALIBRATED)
        if pixel_spacing_mm is not None:
            mm = checked_spacing(pixel_spacing_mm, (image.metadata or {}).get("path"))
            return cls(shape, (mm, mm), SPACING_USER)
        return cls(shape, (1.0, 1.0), SPACING_NONE)

    @classmethod
    def of_volume(cls, volume_node) -> "ImageGeometry":
        """The geometry of a single-slice volume node; the spacing of an uncalibrated volume that is not
        1 mm was set by the user (Volumes module) and counts as user-given."""
        from .imageio import ATTR, is_calibrated

        image = volume_node.GetImageData()
        if image is None:
            raise InputError(volume_node.GetName(), "the volume has no image data")
        cols, rows, _ = image.GetDimensions()
        col_mm, row_mm, _ = volume_node.GetSpacing()
        calibration = volume_node.GetAttribute(ATTR + "Calibration") or ""
        if calibration.startswith(SPACING_USER):
            source = SPACING_USER
        elif is_calibrated(volume_node):
            source = SPACING_CALIBRATED
        else:
            source = SPACING_NONE if np.allclose((row_mm, col_mm), 1.0) else SPACING_USER
        return cls((int(rows), int(cols)), (float(row_mm), float(col_mm)), source)

    @property
    def user_spacing_mm(self) -> float | None:
        """The user-given spacing (what a cohort's ``pixel_spacing_mm`` cell holds), else None."""
        return self.spacing_mm[1] if self.spacing_source == SPACING_USER else None

    def ijk_to_ras(self) -> np.ndarray:
        row_mm, col_mm = self.spacing_mm
        return np.diag([-col_mm, -row_mm, 1.0, 1.0])

    def pixel_to_ras(self, xy) -> np.ndarray:
        """(N, 2) pixel (col, row) -> (N, 3) RAS in mm."""
        from .geometry import pixels_through

        return pixels_through(self.ijk_to_ras(), xy)

    def ras_to_pixel(self, ras) -> np.ndarray:
        """(N, 3) RAS in mm -> (N, 2) pixel (col, row)."""
        from .geometry import ras_through

        return ras_through(self.ijk_to_ras(), ras)


def measuring_spacing(image, pixel_spacing_mm: float | None = None) -> tuple[tuple[float, float] | None, str]:
    """The (row, col) spacing to measure an image in, and its source for the output rows: the
    calibration ("calibrated"), else the user's mm per pixel ("user-given"), else (None, "none"): no mm."""
    geometry = ImageGeometry.of_image(image, pixel_spacing_mm)
    if geometry.spacing_source == SPACING_NONE:
        return None, "none"
    return geometry.spacing_mm, geometry.spacing_source


def spacing_option(text: str) -> float:
    """argparse type of ``--pixel-spacing MM``: the error says what is wrong."""
    import argparse

    try:
        return checked_spacing(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None


def set_user_spacing(volume_node, pixel_spacing_mm: float) -> bool:
    """Give a volume without calibration the user's mm per pixel (recorded as user-given in its
    ``RheumImaging.Calibration`` provenance); a calibrated volume keeps its own. True when applied."""
    from .imageio import ATTR, is_calibrated

    if is_calibrated(volume_node):
        return False
    mm = checked_spacing(pixel_spacing_mm, volume_node.GetName())
    volume_node.SetSpacing(mm, mm, volume_node.GetSpacing()[2])
    volume_node.SetAttribute(ATTR + "Calibration", f"{SPACING_USER}: {mm:g} mm per pixel")
    return True


def spacing_source_of(volume_node) -> str:
    """"calibrated", "user-given" or "none" (the output rows' ``spacing_source``) of a volume."""
    source = ImageGeometry.of_volume(volume_node).spacing_source
    return "none" if source == SPACING_NONE else source


def checked_spacing(value, where=None) -> float:
    """A user-given pixel spacing in mm (a positive finite number), else InputError."""
    try:
        mm = float(value)
    except (TypeError, ValueError):
        raise InputError(where, f"pixel spacing {value!r} is not a number (mm per pixel)") from None
    if not np.isfinite(mm) or mm <= 0:
        raise InputError(where, f"pixel spacing {value!r} must be a positive number of mm per pixel")
    return mm


# ------------------------------------------------------------------ markups curves
def read_curves(paths, geometry: ImageGeometry) -> dict[str, np.ndarray]:
    """Curves of one or several Slicer markups files: name -> (N, 2) pixel (col, row), as drawn.

    Positions are read in the coordinate system each markup declares (LPS, Slicer's default, or RAS;
    markups-schema-v1.0.3.json lines 47-54) and units (mm or um, line 63). Control points whose
    position is "undefined" (line 323) are skipped.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    curves: dict[str, np.ndarray] = {}
    origin: dict[str, Path] = {}
    for path in map(Path, paths):
        for name, ras in _markups_curves(path):
            if name in curves:
                raise InputError(path, f"curve {name!r} is also in {origin[name]}; each curve must be given once")
            xy = geometry.ras_to_pixel(ras)
            _check_inside(path, name, xy, geometry)
            curves[name], origin[name] = xy, path
    return curves


def _markups_curves(path: Path):
    if not path.is_file():
        raise InputError(path, "no such markups file")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not a readable markups JSON file ({exc.__class__.__name__}: {exc})") from None
    if not isinstance(doc, dict) or not _ACCEPTED_SCHEMA.match(str(doc.get("@schema", ""))):
        raise InputError(path, "not a Slicer markups file (no markups-schema-v1.x.y @schema)")
    markups = doc.get("markups")
    if not isinstance(markups, list):
        raise InputError(path, "the markups file holds no 'markups' list")
    curves = [m for m in markups if isinstance(m, dict) and m.get("type") in _CURVE_TYPES]
    if not curves:
        raise InputError(path, "holds no curve (markups of type ClosedCurve or Curve)")
    for k, markup in enumerate(curves):
        name = str(markup.get("name") or "").strip()
        if not name and len(curves) == 1:  # Slicer writes no name (vtkMRMLMarkupsJsonStorageNode.cxx v5.8.1
            name = _stem(path)              # line 980-983 commented out); it names the node after the file
        elif not name:
            raise InputError(path, f"curve {k + 1} of {len(curves)} has no name (name each, e.g. MC2, MC3, MC4)")
        system = str(markup.get("coordinateSystem", "LPS")).upper()
        if system not in ("LPS", "RAS"):
            raise InputError(path, f"curve {name or k!r} has coordinateSystem {system!r} (LPS or RAS)")
        units = markup.get("coordinateUnits", "mm")
        units = units[0] if isinstance(units, list) and units else units
        if units not in _UNITS_MM:
            raise InputError(path, f"curve {name or k!r} has coordinateUnits {units!r} (mm or um)")
        points = []
        for point in markup.get("controlPoints") or []:
            if point.get("positionStatus", "defined") == "undefined":
                continue
            position = point.get("position")
            if not (isinstance(position, list) and len(position) == 3):
                raise InputError(path, f"curve {name or k!r}: control point without a 3-D position")
            points.append([float(v) for v in position])
        if len(points) < 3:
            raise InputError(path, f"curve {name or k!r} has {len(points)} control point(s); a closed curve needs 3")
        ras = np.asarray(points) * _UNITS_MM[units]
        if system == "LPS":
            ras[:, :2] *= -1
        yield name, ras


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".mrk.json", ".json"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _check_inside(path: Path, name: str, xy: np.ndarray, geometry: ImageGeometry) -> None:
    rows, cols = geometry.shape
    cx, cy = xy.mean(axis=0)
    if not (-0.5 <= cx <= cols - 0.5 and -0.5 <= cy <= rows - 0.5):
        raise InputError(path, f"curve {name!r} lies outside the image (centre at pixel {cx:.0f}, {cy:.0f} of a "
                               f"{cols} x {rows} image at {geometry.spacing_mm[1]:g} mm per pixel): was it drawn "
                               "on another image or with another pixel spacing?")


def write_curves(path, curves: dict[str, np.ndarray], geometry: ImageGeometry) -> Path:
    """Write closed curves (name -> (N, 2) pixel col, row) as one Slicer markups file in LPS; never overwrites.

    Fields as markups-schema-v1.0.3.json requires and Slicer writes them (required "@schema" and "markups",
    line 7; per markup "type" line 31-38, "coordinateSystem" line 47-54, "coordinateUnits" line 55-63,
    "controlPoints" with "position" line 275-285 and "positionStatus" line 318-325).
    """
    path = Path(path)
    markups = []
    for name, xy in curves.items():
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        if len(xy) < 3:
            raise InputError(path, f"curve {name!r} has {len(xy)} point(s); a closed curve needs 3")
        lps = geometry.pixel_to_ras(xy)
        lps[:, :2] *= -1
        markups.append({
            "type": "ClosedCurve", "name": name, "coordinateSystem": "LPS", "coordinateUnits": "mm",
            "locked": False, "labelFormat": "%N-%d",
            "controlPoints": [{"id": str(k + 1), "label": f"{name}-{k + 1}", "position": [round(v, 4) for v in p],
                               "orientation": [-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0],
                               "selected": True, "locked": False, "visibility": True, "positionStatus": "defined"}
                              for k, p in enumerate(lps.tolist())],
        })
    text = json.dumps({"@schema": MARKUPS_SCHEMA, "markups": markups}, indent=4)
    return _write_new(path, lambda tmp: Path(tmp).write_text(text + "\n", encoding="utf-8"))


def _write_new(path: Path, write) -> Path:
    """Write ``path`` through a temporary file beside it; refuse (InputError) when it exists."""
    if path.exists():
        raise InputError(path, "already exists; an annotation is never overwritten (remove it or choose another name)")
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith((".seg.nrrd", ".mrk.json", ".nii.gz")) else path.suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        if path.exists():
            raise InputError(path, "appeared while writing; an annotation is never overwritten")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


# ------------------------------------------------------------------ segmentations and labelmaps
def read_masks(path, geometry: ImageGeometry, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Masks on the image's pixel grid, name -> bool (rows, cols), for the ``names`` the file holds.

    A Slicer segmentation (``.seg.nrrd``, or any NRRD with segment fields) by segment name; a plain
    labelmap (``.nrrd``, ``.nii.gz``, ``.png``) by value: k -> ``names[k - 1]``. The file's own geometry
    is honoured (a segmentation drawn in Slicer on the image maps back pixel for pixel).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "no such segmentation or labelmap file")
    lower = path.name.lower()
    if not lower.endswith(_SEGMENTATION_SUFFIXES):
        raise InputError(path, "not a segmentation or labelmap (.seg.nrrd, .nrrd, .nii.gz, .nii, .png)")
    if lower.endswith(".png"):
        return _png_masks(path, geometry, names)
    if lower.endswith(".nrrd") and _nrrd_has_segments(path):
        masks = _segmentation_masks(path, geometry, names)
    else:
        masks = _labelmap_masks(path, geometry, names)
    return masks


def _nrrd_has_segments(path: Path) -> bool:
    """Whether the NRRD header holds Slicer's segment fields (``Segment0_ID``,
    vtkMRMLSegmentationStorageNode.cxx v5.8.1 line 78 and 668)."""
    try:
        with open(path, "rb") as f:
            head = f.read(65536)
    except OSError as exc:
        raise InputError(path, f"unreadable ({exc})") from None
    if not head.startswith(b"NRRD"):
        raise InputError(path, "not a NRRD file (no NRRD magic)")
    header = head.split(b"\n\n", 1)[0]
    return b"Segment0_ID:=" in header


def _segmentation_masks(path: Path, geometry: ImageGeometry, names) -> dict[str, np.ndarray]:
    import slicer
    import vtk

    from .scene import read_node

    node = read_node(path, "vtkMRMLSegmentationNode", "vtkMRMLSegmentationStorageNode", "segmentation file")
    segmentation = node.GetSegmentation()
    labelmap_name = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
    found = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
    masks = {}
    for name in names:
        segment_id = segmentation.GetSegmentIdBySegmentName(name)
        if not segment_id:
            continue
        segment = segmentation.GetSegment(segment_id)
        image = segment.GetRepresentation(labelmap_name)
        if image is None:
            raise InputError(path, f"segment {name!r} has no binary labelmap")
        if image.IsEmpty():
            masks[name] = np.zeros(geometry.shape, dtype=bool)
            continue
        matrix = vtk.vtkMatrix4x4()
        image.GetImageToWorldMatrix(matrix)
        masks[name] = _sample(path, _vtk_array(image), image.GetExtent(), _numpy(matrix), geometry) \
            == segment.GetLabelValue()
    return _at_least_one(path, masks, names, found)


def _labelmap_masks(path: Path, geometry: ImageGeometry, names) -> dict[str, np.ndarray]:
    import vtk

    from .scene import read_node

    node = read_node(path, "vtkMRMLLabelMapVolumeNode", "vtkMRMLVolumeArchetypeStorageNode", "labelmap file")
    image = node.GetImageData()
    if image is None:
        raise InputError(path, "Slicer could not read this labelmap file")
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    labels = _sample(path, _vtk_array(image), image.GetExtent(), _numpy(matrix), geometry)
    return _by_value(path, labels, names)


def _png_masks(path: Path, geometry: ImageGeometry, names) -> dict[str, np.ndarray]:
    from PIL import Image

    try:
        with Image.open(path) as im:
            labels = np.asarray(im)
    except Exception as exc:
        raise InputError(path, f"not a readable labelmap image ({exc.__class__.__name__}: {exc})") from None
    if labels.ndim != 2:
        raise InputError(path, f"a labelmap PNG must be single-channel (shape {labels.shape})")
    if labels.shape != tuple(geometry.shape):
        raise InputError(path, f"labelmap is {labels.shape[1]} x {labels.shape[0]} pixels, the image "
                               f"{geometry.shape[1]} x {geometry.shape[0]}")
    return _by_value(path, labels, names)


def _by_value(path: Path, labels: np.ndarray, names) -> dict[str, np.ndarray]:
    values = set(np.unique(labels).tolist()) - {0}
    unknown = sorted(v for v in values if not (1 <= v <= len(names) and float(v).is_integer()))
    if unknown:
        raise InputError(path, f"label value(s) {unknown[:5]} are not among 1-{len(names)} ({', '.join(names)})")
    masks = {name: labels == k for k, name in enumerate(names, start=1) if k in values}
    return _at_least_one(path, masks, names, [names[int(v) - 1] for v in sorted(values)])


def _at_least_one(path: Path, masks: dict, names, found) -> dict[str, np.ndarray]:
    if not any(m.any() for m in masks.values()):
        holds = ", ".join(map(str, found)) or "nothing"
        raise InputError(path, f"holds none of {', '.join(names)} (it holds: {holds})")
    return masks


def _vtk_array(image) -> np.ndarray:
    from vtk.util import numpy_support

    x0, x1, y0, y1, z0, z1 = image.GetExtent()
    scalars = image.GetPointData().GetScalars()
    data = numpy_support.vtk_to_numpy(scalars)
    if scalars.GetNumberOfComponents() != 1:
        data = data[:, 0]
    return data.reshape(z1 - z0 + 1, y1 - y0 + 1, x1 - x0 + 1)


def _numpy(matrix) -> np.ndarray:
    return np.array([[matrix.GetElement(i, j) for j in range(4)] for i in range(4)])


def _sample(path: Path, data: np.ndarray, extent, ijk_to_ras: np.ndarray, geometry: ImageGeometry) -> np.ndarray:
    """``data`` (k, j, i over ``extent``) at each image pixel's centre (nearest voxel); 0 outside."""
    rows, cols = geometry.shape
    yy, xx = np.mgrid[0:rows, 0:cols]
    ras = geometry.pixel_to_ras(np.column_stack([xx.ravel(), yy.ravel()]))
    try:
        ras_to_ijk = np.linalg.inv(ijk_to_ras)
    except np.linalg.LinAlgError:
        raise InputError(path, "its image-to-world matrix is singular") from None
    ijk = np.rint(ras @ ras_to_ijk[:3, :3].T + ras_to_ijk[:3, 3]).astype(np.int64)
    index = ijk - np.array(extent[0::2])
    shape = np.array(data.shape[::-1])  # (i, j, k)
    inside = np.all((index >= 0) & (index < shape), axis=1)
    out = np.zeros(rows * cols, dtype=data.dtype)
    out[inside] = data[index[inside, 2], index[inside, 1], index[inside, 0]]
    if not inside.any():
        raise InputError(path, "does not overlap the image (drawn on another image or with another pixel spacing?)")
    return out.reshape(rows, cols)


def write_segmentation(path, masks: dict[str, np.ndarray], geometry: ImageGeometry) -> Path:
    """Write masks (name -> bool (rows, cols)) as a Slicer ``.seg.nrrd`` on the image's geometry, each
    segment with its standard terminology (anatomy.TERMINOLOGY); never overwrites.

    Slicer's own writer writes it (vtkMRMLSegmentationStorageNode v5.8.1 WriteBinaryLabelmapRepresentation,
    lines 1374-1401 common fields, 1474 on per segment ``Segment<i>_ID/Name/Color/Tags/LabelValue/Layer``);
    the terminology goes in the segment tag ``TerminologyEntry`` (vtkSegment.cxx line 49).
    """
    import slicer

    from .anatomy import COLOURS, TERMINOLOGY
    from .scene import new_scene

    path = Path(path)
    if not path.name.lower().endswith(".seg.nrrd"):
        raise InputError(path, "a segmentation is written as .seg.nrrd")
    scene = new_scene()
    node = segmentation_node(scene, masks, geometry, path.name)
    for segment_id in masks:
        segment = node.GetSegmentation().GetSegment(segment_id)
        if segment_id in TERMINOLOGY:
            segment.SetTag(slicer.vtkSegment.GetTerminologyEntryTagName(), TERMINOLOGY[segment_id])
        segment.SetColor(*COLOURS.get(segment_id, (0.8, 0.8, 0.2)))
        segment.SetColorAutoGenerated(False)

    def write(tmp):
        storage = slicer.vtkMRMLSegmentationStorageNode()
        scene.AddNode(storage)
        storage.SetFileName(tmp)
        storage.SetUseCompression(True)
        if not storage.WriteData(node):
            raise InputError(path, "Slicer could not write the segmentation")

    return _write_new(path, write)


def segmentation_node(scene, masks: dict[str, np.ndarray], geometry: ImageGeometry, name: str = "segmentation"):
    """A ``vtkMRMLSegmentationNode`` with one segment per mask (segment id = name), on the image's geometry."""
    import slicer
    import vtk
    from vtk.util import numpy_support

    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
    segmentation = node.GetSegmentation()
    labelmap_name = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
    segmentation.SetSourceRepresentationName(labelmap_name)
    matrix = vtk.vtkMatrix4x4()
    for i in range(4):
        for j in range(4):
            matrix.SetElement(i, j, geometry.ijk_to_ras()[i, j])
    for seg_name, mask in masks.items():
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != tuple(geometry.shape):
            raise InputError(name, f"mask {seg_name!r} is {mask.shape}, the image {geometry.shape}")
        image = slicer.vtkOrientedImageData()
        image.SetDimensions(mask.shape[1], mask.shape[0], 1)
        image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(
            mask.astype(np.uint8).ravel(), deep=True, array_type=vtk.VTK_UNSIGNED_CHAR))
        image.SetImageToWorldMatrix(matrix)
        segment = slicer.vtkSegment()
        segment.SetName(seg_name)
        segment.SetNameAutoGenerated(False)  # the name is ours, not derived from the terminology
        segment.AddRepresentation(labelmap_name, image)
        segmentation.AddSegment(segment, seg_name)
    segmentation.CollapseBinaryLabelmaps(False)  # non-overlapping segments share one layer (a 3-D file)
    rows, cols = geometry.shape
    converter = slicer.vtkSegmentationConverter
    segmentation.SetConversionParameter(  # so Slicer's Segment Editor edits on the image's own grid
        converter.GetReferenceImageGeometryParameterName(),
        converter.SerializeImageGeometry(matrix, [0, cols - 1, 0, rows - 1, 0, 0]))
    return node


# ------------------------------------------------------------------ contours
def mask_to_contour(mask) -> np.ndarray:
    """(N, 2) pixel (col, row) outer boundary of the largest region of ``mask`` (closed: last != first;
    positive shoelace area in (col, row), i.e. clockwise on screen): the iso-line half-way between
    inside and outside pixel centres, so its area is the pixel count less about half a pixel per
    boundary pixel."""
    from skimage.measure import find_contours, label

    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("empty mask: no contour")
    regions = label(mask, connectivity=1)
    largest = np.argmax(np.bincount(regions.ravel())[1:]) + 1
    filled = _fill_holes(regions == largest)
    padded = np.pad(filled, 1).astype(np.float32)
    contours = find_contours(padded, 0.5)
    rc = max(contours, key=len) - 1.0
    xy = rc[:-1, ::-1] if np.allclose(rc[0], rc[-1]) else rc[:, ::-1]
    return xy if _signed_area(xy) > 0 else xy[::-1]


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    from scipy.ndimage import binary_fill_holes

    return binary_fill_holes(mask)


def _signed_area(xy: np.ndarray) -> float:
    x, y = xy[:, 0], xy[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))


# ------------------------------------------------------------------ the one image path (contract C)
def prepare_image(source, prepared_dir, pixel_spacing_mm: float | None = None) -> tuple[Path, ImageGeometry]:
    """Decode ``source`` with :func:`~RheumImagingLib.imageio.read_image` and cache it once as float32
    (rows, cols) ``<prepared_dir>/<sha256 of the source file>.npy``; returns that path and the geometry."""
    from .imageio import read_image

    source = Path(source)
    image = read_image(source)
    geometry = ImageGeometry.of_image(image, pixel_spacing_mm)
    digest = hashlib.sha256()
    with open(image.metadata.get("path") or source, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    prepared_dir = Path(prepared_dir)
    prepared_dir.mkdir(parents=True, exist_ok=True)
    target = prepared_dir / f"{digest.hexdigest()}.npy"
    if not target.exists():
        fd, tmp = tempfile.mkstemp(prefix=".prepare.", suffix=".npy", dir=prepared_dir)
        os.close(fd)
        try:
            np.save(tmp, np.ascontiguousarray(image.pixels, dtype=np.float32))
            os.replace(tmp, target)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return target, geometry
