"""Writing single-frame DICOM images (phantoms, exported results) with pydicom.

UIDs are derived from caller-given entropy so a seeded phantom cohort is written
byte-identically on every run, yet every instance has its own UID.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

SOP_CLASS = {
    "CR": "1.2.840.10008.5.1.4.1.1.1",  # Computed Radiography Image Storage
    "DX": "1.2.840.10008.5.1.4.1.1.1.1",  # Digital X-Ray Image Storage - For Presentation
    "US": "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image Storage
    "OT": "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image Storage
}


def write_dicom(
    path: str | Path,
    pixels: np.ndarray,
    *,
    modality: str,
    entropy: list[str],
    patient_id: str,
    patient_age_years: int | None = None,
    patient_sex: str | None = None,
    photometric: str = "MONOCHROME2",
    study_entropy: list[str] | None = None,
    study_date: datetime.date = datetime.date(2020, 1, 1),
    elements: dict[str, Any] | None = None,
) -> Dataset:
    """Write a 2-D grayscale image (uint8 or uint16) as a DICOM file of ``modality``.

    ``elements`` sets further attributes by keyword (e.g. ``ImagerPixelSpacing`` or
    ``SequenceOfUltrasoundRegions``). ``entropy`` makes the SOP/series UIDs
    reproducible; ``study_entropy`` (default: the patient) groups images in a study.
    """
    pixels = np.ascontiguousarray(pixels)
    if pixels.ndim != 2 or pixels.dtype not in (np.uint8, np.uint16):
        raise ValueError("pixels must be a 2-D uint8 or uint16 array")
    bits = pixels.dtype.itemsize * 8
    sop_class = SOP_CLASS[modality]
    sop_instance = generate_uid(entropy_srcs=["sop", *entropy])

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = generate_uid(entropy_srcs=["SlicerRheumImaging"])

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_instance
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["study", *(study_entropy or [patient_id])])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["series", *entropy])
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = patient_id
    if patient_age_years is not None:
        ds.PatientAge = f"{int(patient_age_years):03d}Y"
    if patient_sex is not None:
        ds.PatientSex = patient_sex
    ds.StudyDate = ds.SeriesDate = study_date.strftime("%Y%m%d")
    ds.StudyID = "1"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = "SlicerRheumImaging phantom"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = bits
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    for keyword, value in (elements or {}).items():
        setattr(ds, keyword, value)
    ds.PixelData = pixels.tobytes()

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if int(pydicom.__version__.split(".")[0]) >= 3:
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    else:  # pydicom 2.4 (Slicer 5.8-5.10): write_like_original=False is the same DICOM Part 10 file format
        pydicom.dcmwrite(path, ds, write_like_original=False)
    return ds
