"""Radiograph and ultrasound images in, as arrays and as MRML volume nodes.

Rules both modules rely on:
- pixels come out as a float32 (rows, cols) array with bone / echo bright: MONOCHROME1
  is inverted, the Modality LUT and then the VOI LUT (or window) are applied where present,
  RGB / YBR / PALETTE COLOR become luma (ITU-R BT.601 weights);
- multi-frame files give one frame, ``frame`` (0-based), default the first;
- spacing in mm only from real calibration: ``PixelSpacing``, else ``ImagerPixelSpacing``
  (divided by ``EstimatedRadiographicMagnificationFactor`` when present), else, for
  ultrasound, the ``SequenceOfUltrasoundRegions`` region that holds the image. Anything
  else is "uncalibrated: <reason>" and never silently 1 mm;
- every bad input raises :class:`InputError` naming the file; nothing is written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

UNCALIBRATED = "uncalibrated"
ATTR = "RheumImaging."
_GRAY = ("MONOCHROME1", "MONOCHROME2")
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
ORIENTATION_KEYS = ("ImageLaterality", "Laterality", "ViewPosition", "SeriesDescription")  # for the hand's side


@dataclass
class LoadedImage:
    pixels: np.ndarray  # float32 (rows, cols), bone / echo bright
    spacing_mm: tuple[float, float] | None  # (row, col) in mm, None when uncalibrated
    calibration: str  # "PixelSpacing", "ImagerPixelSpacing", "US region", or "uncalibrated: <reason>"
    metadata: dict = field(default_factory=dict)

    @property
    def calibrated(self) -> bool:
        return self.spacing_mm is not None


def read_image(path: str | os.PathLike, frame: int | None = None) -> LoadedImage:
    """Read one 2-D image (DICOM, PNG, JPEG, TIFF or single-slice NRRD); a folder must hold exactly one image."""
    path = Path(path)
    if path.is_dir():
        path = _single_file(path)
    if not path.is_file():
        raise InputError(path, "no such file")
    if path.suffix.lower() in (".png", ".tif", ".tiff", ".jpg", ".jpeg"):
        return _read_plain(path, frame)
    if path.name.lower().endswith(".nrrd") and not path.name.lower().endswith(".seg.nrrd"):
        return _read_nrrd(path)
    return _read_dicom(path, frame)


def _read_nrrd(path: Path) -> LoadedImage:
    """A single-slice NRRD volume, as "Add to training cohort" writes an image that has no file of its own
    (RheumImagingLib.training_cohort): its spacing is the volume's calibration; 1 mm means none."""
    from .scene import read_node

    node = read_node(path, "vtkMRMLScalarVolumeNode", "vtkMRMLVolumeArchetypeStorageNode", "NRRD image")
    if node.GetImageData() is None:
        raise InputError(path, "Slicer could not read this NRRD image")
    if node.GetImageData().GetDimensions()[2] != 1:
        raise InputError(path, f"a 3-D NRRD volume ({node.GetImageData().GetDimensions()}); give a 2-D image")
    pixels = array_from_volume(node).astype(np.float32)
    col, row, _ = node.GetSpacing()
    meta = {"path": str(path), "Modality": None, "PatientID": None, "PatientAge": None, "PatientSex": None,
            "frame": 0}
    if np.allclose((row, col), 1.0):
        return LoadedImage(pixels, None, f"{UNCALIBRATED}: NRRD spacing is 1 mm (none recorded)", meta)
    return LoadedImage(pixels, (float(row), float(col)), "NRRD spacing", meta)


def _single_file(folder: Path) -> Path:
    import pydicom

    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise InputError(folder, "the folder holds no files")
    if len(files) == 1:
        return files[0]
    series = set()
    for p in files:
        try:
            series.add(pydicom.dcmread(p, stop_before_pixels=True).get("SeriesInstanceUID"))
        except Exception:
            series.add(("not DICOM", p.name))
    if len(series) > 1:
        raise InputError(folder, f"mixed series: {len(files)} files from {len(series)} series; give one image file")
    raise InputError(folder, f"{len(files)} images of one series; give the image file to load")


def _read_plain(path: Path, frame: int | None) -> LoadedImage:
    try:
        if path.suffix.lower() in (".tif", ".tiff"):
            import tifffile

            data = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as im:
                data = np.asarray(im.convert("I;16") if im.mode == "I;16" else im)
    except Exception as exc:
        raise InputError(path, f"not a readable image ({exc.__class__.__name__}: {exc})") from None
    data = np.asarray(data)
    if data.ndim == 3 and data.shape[-1] in (3, 4):
        data = data[..., :3].astype(np.float32) @ _LUMA
    elif data.ndim == 3:  # a multi-page TIFF
        index = 0 if frame is None else frame
        if not 0 <= index < data.shape[0]:
            raise InputError(path, f"frame {frame} does not exist (the file has {data.shape[0]})")
        data = data[index]
    if data.ndim != 2:
        raise InputError(path, f"not a 2-D grayscale or colour image (shape {data.shape})")
    meta = {"path": str(path), "Modality": None, "PatientID": None, "PatientAge": None, "PatientSex": None,
            "frame": 0 if frame is None else frame}
    reason = f"{path.suffix.lstrip('.').upper()} files carry no calibration"
    return LoadedImage(data.astype(np.float32), None, f"{UNCALIBRATED}: {reason}", meta)


def _read_dicom(path: Path, frame: int | None) -> LoadedImage:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except InvalidDicomError:
        raise InputError(path, "not a DICOM file (no DICM preamble) and not PNG/TIFF") from None
    except Exception as exc:
        raise InputError(path, f"unreadable DICOM ({exc.__class__.__name__}: {exc})") from None
    if "PixelData" not in ds and "FloatPixelData" not in ds:
        raise InputError(path, "DICOM file without pixel data")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in _GRAY + _COLOUR:
        raise InputError(path, f"unsupported photometric interpretation {photometric or '(missing)'}")
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    index = 0 if frame is None else int(frame)
    if not 0 <= index < n_frames:
        raise InputError(path, f"frame {frame} does not exist (the file has {n_frames})")
    pixels = _decode(ds, path, index if n_frames > 1 else None, photometric)
    spacing, calibration = _calibration(ds, pixels.shape)
    meta = {
        "path": str(path),
        "Modality": ds.get("Modality"),
        "PatientID": str(ds.get("PatientID", "")) or None,
        "PatientAge": _age_years(ds.get("PatientAge")),
        "PatientSex": ds.get("PatientSex") if ds.get("PatientSex") in ("F", "M") else None,
        "SOPInstanceUID": ds.get("SOPInstanceUID"),
        "SeriesInstanceUID": ds.get("SeriesInstanceUID"),
        "PhotometricInterpretation": photometric,
        "TransferSyntaxUID": str(ds.file_meta.get("TransferSyntaxUID", "")),
        "frame": index,
        "n_frames": n_frames,
        **{key: str(ds.get(key, "") or "").strip() or None for key in ORIENTATION_KEYS},
    }
    return LoadedImage(pixels, spacing, calibration, meta)


def _pixel_functions():
    """pydicom 3's ``pydicom.pixels``, or the same functions of pydicom 2.4 (shipped with Slicer 5.8-5.10)."""
    try:
        from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut
        from pydicom.pixels import pixel_array as _frame

        def pixel_array(ds, index=None):
            return _frame(ds, index=index) if index is not None else ds.pixel_array
    except ImportError:  # pydicom 2.x
        from pydicom.pixel_data_handlers.util import (apply_color_lut, apply_modality_lut, apply_voi_lut,
                                                      convert_color_space)

        def pixel_array(ds, index=None):
            """One frame (``index``) or the whole image; YBR converted to RGB as pydicom 3 does."""
            arr = ds.pixel_array
            if index is not None:
                arr = arr[index]
            photometric = str(ds.PhotometricInterpretation)
            if photometric in ("YBR_FULL", "YBR_FULL_422"):  # YBR_RCT/ICT (JPEG 2000) decode to RGB
                arr = convert_color_space(arr, photometric, "RGB")
            return arr
    return apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array


def _decode(ds, path: Path, index: int | None, photometric: str) -> np.ndarray:
    apply_color_lut, apply_modality_lut, apply_voi_lut, pixel_array = _pixel_functions()
    try:
        raw = pixel_array(ds, index=index)
    except Exception as exc:
        syntax = ds.file_meta.get("TransferSyntaxUID")
        name = getattr(syntax, "name", syntax)
        raise InputError(path, f"pixel data cannot be decoded ({name}): {exc.__class__.__name__}: {exc}") from None
    if photometric == "PALETTE COLOR":
        return apply_color_lut(raw, ds).astype(np.float32) @ _LUMA
    if photometric in _COLOUR:  # pydicom converts YBR to RGB while decoding
        return raw[..., :3].astype(np.float32) @ _LUMA
    values = apply_modality_lut(raw, ds).astype(np.float64)
    lo, hi = _nominal_range(ds)
    if "VOILUTSequence" in ds or "WindowCenter" in ds:
        values = apply_voi_lut(values, ds, index=0).astype(np.float64)
        lo, hi = _nominal_range(ds)  # pydicom's windowing keeps the stored value range
    if photometric == "MONOCHROME1":
        values = (lo + hi) - values
    return values.astype(np.float32)


def _nominal_range(ds) -> tuple[float, float]:
    """The stored value range after the linear Modality LUT (the reference for inversion)."""
    bits = int(ds.get("BitsStored", ds.get("BitsAllocated", 16)))
    signed = int(ds.get("PixelRepresentation", 0)) == 1
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0) or 0)
    ends = sorted((lo * slope + intercept, hi * slope + intercept))
    return ends[0], ends[1]


def _calibration(ds, shape) -> tuple[tuple[float, float] | None, str]:
    reasons = []
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        if keyword not in ds:
            continue
        values = [float(v) for v in (ds.get(keyword) or [])]
        if len(values) != 2 or min(values) <= 0 or not np.all(np.isfinite(values)):
            reasons.append(f"{keyword} is {values} (zero, missing or inconsistent)")
            continue
        if keyword == "ImagerPixelSpacing" and ds.get("EstimatedRadiographicMagnificationFactor"):
            factor = float(ds.EstimatedRadiographicMagnificationFactor)
            if factor > 0:
                return (values[0] / factor, values[1] / factor), f"{keyword} / magnification {factor:g}"
        return (values[0], values[1]), keyword
    region = _ultrasound_region(ds, shape)
    if isinstance(region, tuple):
        return region, "US region"
    if region:
        reasons.append(region)
    if not reasons:
        reasons.append("no PixelSpacing, ImagerPixelSpacing or ultrasound region calibration")
    return None, f"{UNCALIBRATED}: " + "; ".join(reasons)


def _ultrasound_region(ds, shape):
    """(row_mm, col_mm) of the largest 2-D tissue region in cm, or a reason string."""
    regions = ds.get("SequenceOfUltrasoundRegions")
    if not regions:
        return None
    best = None
    for r in regions:
        if int(r.get("RegionSpatialFormat", 0)) != 1:  # 1 = 2-D tissue or flow
            continue
        if int(r.get("PhysicalUnitsXDirection", 0)) != 3 or int(r.get("PhysicalUnitsYDirection", 0)) != 3:
            continue  # 3 = cm
        dx, dy = abs(float(r.get("PhysicalDeltaX", 0))), abs(float(r.get("PhysicalDeltaY", 0)))
        if dx <= 0 or dy <= 0:
            continue
        area = (int(r.RegionLocationMaxX1) - int(r.RegionLocationMinX0)) * (int(r.RegionLocationMaxY1) - int(r.RegionLocationMinY0))
        if best is None or area > best[0]:
            best = (area, dy * 10.0, dx * 10.0)
    if best is None:
        return "ultrasound regions hold no 2-D region calibrated in cm"
    return best[1], best[2]


def _age_years(text) -> float | None:
    """DICOM AS ('055Y', '006M', '010W', '003D') in years."""
    if not text:
        return None
    text = str(text).strip().upper()
    per_year = {"Y": 1.0, "M": 12.0, "W": 52.1775, "D": 365.25}
    if len(text) >= 2 and text[-1] in per_year and text[:-1].isdigit():
        return int(text[:-1]) / per_year[text[-1]]
    return None


# ------------------------------------------------------------------ MRML volumes
def volume_from_array(scene, pixels: np.ndarray, spacing_mm, name: str, calibration: str | None = None,
                      metadata: dict | None = None):
    """A ``vtkMRMLScalarVolumeNode`` showing ``pixels`` upright, as Slicer's DICOM loader
    places a single slice (LPS: columns toward patient left, rows toward posterior)."""
    import vtk
    from vtk.util import numpy_support

    pixels = np.ascontiguousarray(pixels, dtype=np.float32)
    rows, cols = pixels.shape
    image = vtk.vtkImageData()
    image.SetDimensions(cols, rows, 1)
    image.GetPointData().SetScalars(numpy_support.numpy_to_vtk(pixels.ravel(), deep=True, array_type=vtk.VTK_FLOAT))
    node = scene.AddNewNodeByClass("vtkMRMLScalarVolumeNode", name)
    node.SetAndObserveImageData(image)
    row_mm, col_mm = spacing_mm if spacing_mm else (1.0, 1.0)
    node.SetSpacing(col_mm, row_mm, 1.0)
    node.SetIJKToRASDirections(-1, 0, 0, 0, -1, 0, 0, 0, 1)
    _set_source_attributes(node, spacing_mm, calibration, metadata)
    node.CreateDefaultDisplayNodes()
    return node


def _set_source_attributes(node, spacing_mm, calibration: str | None, metadata: dict | None) -> None:
    default = "PixelSpacing" if spacing_mm else f"{UNCALIBRATED}: not given"
    node.SetAttribute(ATTR + "Calibration", calibration or default)
    for key in ("PatientID", "PatientAge", "PatientSex", "Modality", *ORIENTATION_KEYS):
        value = (metadata or {}).get(key)
        if value is not None:
            node.SetAttribute(ATTR + key, f"{value:g}" if isinstance(value, float) else str(value))
    if metadata and metadata.get("path"):
        node.SetAttribute(ATTR + "SourceFile", metadata["path"])
        node.SetAttribute(ATTR + "Frame", str(metadata.get("frame", 0)))


def adopt_dicom_source(node, file_for_instance) -> bool:
    """Give a volume loaded by Slicer's DICOM browser what :func:`load_volume` gives: calibration, age, sex.

    Slicer's scalar volume plugin records only ``DICOM.instanceUIDs`` (Modules/Scripted/DICOMPlugins/
    DICOMScalarVolumePlugin.py v5.8.1 line 510) and ignores ultrasound regions, so the volume's file is read
    again: ``file_for_instance`` maps an instance UID to its file (``slicer.dicomDatabase.fileForInstance``).
    The spacing becomes the calibrated one (mm only from real calibration). Returns True when adopted.
    """
    uids = (node.GetAttribute("DICOM.instanceUIDs") or "").split()
    if node.GetAttribute(ATTR + "Calibration") or not uids or file_for_instance is None:
        return False
    path = file_for_instance(uids[0])
    if not path:
        raise InputError(node.GetName(), f"its DICOM instance {uids[0]} is not in the DICOM database")
    frame = int(node.GetAttribute(ATTR + "Frame") or 0)
    image = read_image(path, frame if len(uids) == 1 and frame else None)
    if image.spacing_mm:
        row_mm, col_mm = image.spacing_mm
        node.SetSpacing(col_mm, row_mm, node.GetSpacing()[2])
    _set_source_attributes(node, image.spacing_mm, image.calibration, image.metadata)
    return True


def load_volume(scene, path: str | os.PathLike, frame: int | None = None, name: str | None = None):
    """Read an image file and add it to ``scene`` as a scalar volume with its calibration."""
    image = read_image(path, frame)
    return volume_from_array(scene, image.pixels, image.spacing_mm, name or Path(path).stem,
                             image.calibration, image.metadata)


def array_from_volume(node) -> np.ndarray:
    """The 2-D (rows, cols) pixel array of a single-slice volume node (a copy)."""
    from vtk.util import numpy_support

    image = node.GetImageData()
    if image is None:
        raise InputError(node.GetName(), "the volume has no image data")
    cols, rows, slices = image.GetDimensions()
    data = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars())
    components = image.GetNumberOfScalarComponents()
    if components == 1:
        return data.reshape(slices, rows, cols)[0].copy()
    if components in (3, 4):  # an RGB(A) vector volume (a colour PNG/JPEG loaded by Slicer): luminance, as on load
        return data.reshape(slices, rows, cols, components)[0, ..., :3].astype(np.float32) @ _LUMA
    raise InputError(node.GetName(), f"a volume with {components} components per pixel is not a grayscale or RGB image")


def spacing_mm(node) -> tuple[float, float] | None:
    """(row, col) spacing in mm, or None when the volume is not calibrated."""
    if not is_calibrated(node):
        return None
    col, row, _ = node.GetSpacing()
    return row, col


def is_calibrated(node) -> bool:
    calibration = node.GetAttribute(ATTR + "Calibration") or ""
    return bool(calibration) and not calibration.startswith(UNCALIBRATED)
