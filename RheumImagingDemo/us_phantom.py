"""Synthetic salivary-gland and buccal-mucosa ultrasound with exact ground truth (phantoms, not patients).

Why: no salivary-gland or buccal-mucosa ultrasound can be downloaded here, and segmentation,
thickness, echogenicity, gland grades and the cohort statistics all need images whose truth is known.

Each patient has five B-mode images (``us_phantom_bmode.bmode``: Rayleigh speckle, PSF, depth
attenuation with time-gain compensation, log compression), rows = depth, probe at the top:

- ``mucosa`` (256 x 256 at 0.03 mm, 7.7 mm field, 20 MHz): coupling gel (anechoic), the
  epithelium (hyperechoic band; label 1) of the patient's thickness, the submucosa (hypoechoic;
  label 2), striated buccinator muscle below. 0.38 mm is ~13 pixels. Thickness is measured
  perpendicular to the gently undulating layer. "homogeneous" epithelium is moderately
  hyperechoic and uniform; "heterogeneous_hyperechoic" is brighter (+4 dB) and patchy
  (log-normal reflectivity, bright specks).
- ``parotid_left|right``, ``submandibular_left|right`` (256 x 256 at 0.1 mm, 25.6 mm field,
  12 MHz): skin, subcutaneous fat with septa, fascia, the gland parenchyma (label 3, hyperechoic
  relative to the muscle around it) holding round hypoechoic foci (label 4, inside the
  parenchyma) whose count and size follow the grade (``us_phantom_grading.json``).

Scanner settings: ``acquisition="fixed"`` (one gain, 45 dB dynamic range, one probe per site) or, per
image, ``draw_acquisition`` (``--acquisition varied``): gain, dynamic range, transducer frequency,
speckle reduction and pixel spacing drawn from the image's own random stream, so that they are
independent of the label and of the truth, and recorded in the truth.

Labels: 0 background, 1 mucosa epithelium, 2 mucosa submucosa, 3 gland parenchyma, 4 hypoechoic
focus (part of the parenchyma: parenchyma = labels 3 and 4).

pSS patients differ from controls the way the published cohort did: thinner epithelium (median
0.32 vs 0.45 mm), heterogeneous hyperechoic epithelium more often (60% vs 11%), higher gland
grades (controls mostly 0-1).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

from RheumImagingLib.anatomy import GLAND_SITES, SITES, US_LABELS, annotation_column, image_column
from RheumImagingLib.cohort_folder import alternating_patients, cohort_writer
from RheumImagingLib.errors import InputError
from SjogrenUSLib.scoring import grade_gland

from .us_phantom_bmode import Probe, bmode, smooth_noise

GLANDS = GLAND_SITES
LABELS = {0: "background", **US_LABELS}
ECHOGENICITY = ("homogeneous", "heterogeneous_hyperechoic")
DEFAULT_SHAPE = (256, 256)
MUCOSA_SPACING_MM = 0.03
GLAND_SPACING_MM = 0.1
THICKNESS_CUTOFF_MM = 0.38  # mucosa score: one point at or below
MUCOSA_PROBE = Probe(frequency_mhz=20.0, axial_fwhm_mm=0.08, lateral_fwhm_mm=0.2)
GLAND_PROBE = Probe(frequency_mhz=12.0, axial_fwhm_mm=0.15, lateral_fwhm_mm=0.35)

GRADING_FILE = Path(__file__).with_name("us_phantom_grading.json")
GRADING = json.loads(GRADING_FILE.read_text())

# Acquisition variation ("varied"): drawn per image from its own random stream, independent of the
# patient's label and truth. Gain offset (dB, added to the +-1.5 dB jitter), dynamic range (dB),
# transducer frequency as a factor (the PSF widths scale with 1/factor: speckle size), speckle
# reduction (Gaussian sigma in pixels on the log image) and pixel spacing as a factor.
ACQUISITION_MODES = ("fixed", "varied")
ACQUISITION_RANGES = {"gain_db": (-10.0, 10.0), "dynamic_range_db": (40.0, 70.0), "frequency_factor": (0.75, 1.25),
                      "speckle_reduction_px": (0.0, 1.0), "spacing_factor": (0.95, 1.2)}
FIXED_ACQUISITION = {"gain_db": 0.0, "dynamic_range_db": 45.0, "frequency_factor": 1.0, "speckle_reduction_px": 0.0,
                     "spacing_factor": 1.0}

# Cohort distributions (thickness: log-normal median and log-sd in mm).
THICKNESS = {1: (0.32, 0.18), 0: (0.45, 0.15)}
THICKNESS_RANGE_MM = (0.15, 0.80)
HETEROGENEOUS_FRACTION = {1: 0.60, 0: 0.11}
CONTROL_GRADE_P = (0.55, 0.30, 0.12, 0.03, 0.0)
PSS_SEVERITY_P = (0.0, 0.15, 0.30, 0.35, 0.20)  # patient-level severity; each gland within +-1
FEMALE_FRACTION = {1: 0.9, 0: 0.8}
AGE_MEAN, AGE_SD = 56.0, 12.0

# Reflectivities (linear intensity; 1 = a moderately echoic tissue).
_R = {"gel": 1e-4, "epi_homogeneous": 1.5, "epi_heterogeneous": 4.0, "submucosa": 0.05, "muscle": 0.45,
      "skin": 1.4, "fat": 0.12, "septum": 1.0, "fascia": 1.5, "parenchyma": 1.0, "gland_muscle": 0.25, "focus": 0.03, "cyst": 0.006,
      "fibrosis": 3.0}


def _rng(rng_or_seed) -> np.random.Generator:
    return rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)


def _check_shape(shape, spacing_mm, min_field_mm: float) -> tuple[int, int]:
    rows, cols = (int(shape[0]), int(shape[1]))
    if not float(spacing_mm) > 0:
        raise ValueError(f"pixel spacing must be positive, not {spacing_mm}")
    if min(rows, cols) * float(spacing_mm) < min_field_mm or min(rows, cols) < 32:
        raise ValueError(f"a {rows}x{cols} image at {spacing_mm} mm is too small: the field must be at least "
                         f"{min_field_mm} mm and 32 pixels each way")
    return rows, cols


def _undulation(rng: np.random.Generator, cols: int, amplitude_px: float) -> tuple[np.ndarray, np.ndarray]:
    """A smooth boundary offset (pixels) along the columns and its slope."""
    x = np.arange(cols, dtype=np.float64)
    period = rng.uniform(0.8, 1.6) * cols
    phase = rng.uniform(0.0, 2.0 * np.pi)
    amp = rng.uniform(0.0, amplitude_px)
    tilt = rng.uniform(-0.03, 0.03)
    w = 2.0 * np.pi / period
    offset = amp * np.sin(w * x + phase) + tilt * (x - cols / 2.0)
    slope = amp * w * np.cos(w * x + phase) + tilt
    return offset, slope


def draw_acquisition(rng_or_seed) -> dict:
    """One image's scanner settings, uniform in ACQUISITION_RANGES (for ``--acquisition varied``)."""
    rng = _rng(rng_or_seed)
    return {k: round(float(rng.uniform(lo, hi)), 4) for k, (lo, hi) in ACQUISITION_RANGES.items()}


def _acquire(rng, refl, sp, probe: Probe, acquisition: dict | None):
    """B-mode image of ``refl`` and the settings used: the fixed probe, or ``acquisition``'s variation."""
    gain_db = rng.uniform(-1.5, 1.5)
    acq = dict(FIXED_ACQUISITION, **(acquisition or {}))
    f = acq["frequency_factor"]
    probe = dataclasses.replace(probe, frequency_mhz=probe.frequency_mhz * f, axial_fwhm_mm=probe.axial_fwhm_mm / f,
                                lateral_fwhm_mm=probe.lateral_fwhm_mm / f, dynamic_range_db=acq["dynamic_range_db"])
    gain_db += acq["gain_db"]
    pixels = bmode(rng, refl, (sp, sp), probe, gain_db, acq["speckle_reduction_px"])
    info = {"gain_db": round(gain_db, 3),
            "probe": {"frequency_mhz": round(probe.frequency_mhz, 4), "axial_fwhm_mm": round(probe.axial_fwhm_mm, 4),
                      "lateral_fwhm_mm": round(probe.lateral_fwhm_mm, 4)}}
    if acquisition is not None:
        info["acquisition"] = acq
    return pixels, info


def render_mucosa(rng_or_seed, thickness_mm: float, echogenicity: str, spacing_mm: float = MUCOSA_SPACING_MM,
                  shape: tuple[int, int] = DEFAULT_SHAPE, acquisition: dict | None = None
                  ) -> tuple[np.ndarray, np.ndarray, dict]:
    """One buccal-mucosa image: (pixels uint8, labels uint8, truth dict).

    The epithelium's thickness perpendicular to the layer is ``thickness_mm`` everywhere; a
    column of the label map holds round(thickness / spacing / cos(slope)) +- 1 epithelium pixels.
    """
    rng = _rng(rng_or_seed)
    if echogenicity not in ECHOGENICITY:
        raise ValueError(f"echogenicity must be one of {ECHOGENICITY}, not {echogenicity!r}")
    thickness_mm = float(thickness_mm)
    if not 0.05 <= thickness_mm <= 1.5:
        raise ValueError(f"epithelium thickness {thickness_mm} mm is outside 0.05-1.5 mm")
    sp = float(spacing_mm) * (acquisition or FIXED_ACQUISITION)["spacing_factor"]
    rows, cols = _check_shape(shape, sp, min_field_mm=4.5)

    gel_mm = rng.uniform(0.4, 0.9)
    submucosa_mm = rng.uniform(0.9, 1.8)
    offset, slope = _undulation(rng, cols, amplitude_px=0.12 / sp)
    top = gel_mm / sp + offset
    bottom = top + thickness_mm / sp * np.sqrt(1.0 + slope**2)
    offset2, _ = _undulation(rng, cols, amplitude_px=0.15 / sp)
    deep = bottom + submucosa_mm / sp + offset2

    y = np.arange(rows, dtype=np.float64)[:, None]
    epithelium = (y >= top) & (y < bottom)
    submucosa = (y >= bottom) & (y < deep)
    muscle = y >= deep
    labels = np.zeros((rows, cols), np.uint8)
    labels[epithelium] = 1
    labels[submucosa] = 2

    g = smooth_noise(rng, (rows, cols), (2.0, 8.0))  # patches larger than the speckle
    if echogenicity == "homogeneous":
        epi = _R["epi_homogeneous"] * np.exp(0.10 * g)
    else:
        specks = np.where(rng.random((rows, cols)) < 0.03, 6.0, 1.0)
        epi = _R["epi_heterogeneous"] * np.exp(1.0 * g - 0.5) * specks
    fibres = smooth_noise(rng, (rows, cols), (0.8, 12.0))
    refl = np.full((rows, cols), _R["gel"])
    refl = np.where(epithelium, epi, refl)
    refl = np.where(submucosa, _R["submucosa"] * np.exp(0.2 * smooth_noise(rng, (rows, cols), (2.0, 4.0))), refl)
    refl = np.where(muscle, _R["muscle"] * np.clip(1.0 + 0.7 * fibres, 0.1, None), refl)
    pixels, acquired = _acquire(rng, refl, sp, MUCOSA_PROBE, acquisition)

    truth = {
        "site": "mucosa",
        "spacing_mm": [sp, sp],
        "shape": [rows, cols],
        "thickness_mm": thickness_mm,
        "echogenicity": echogenicity,
        "gel_mm": round(gel_mm, 4),
        "submucosa_mm": round(submucosa_mm, 4),
        "gain_db": acquired.pop("gain_db"),
        "labels": {str(k): v for k, v in LABELS.items()},
        **acquired,
    }
    return pixels, labels, truth


def _parenchyma(rng: np.random.Generator, gland: str, rows: int, cols: int, sp: float, fascia_mm: float) -> np.ndarray:
    """The gland outline: an ellipse with smooth harmonic bulges (submandibular more triangular)."""
    parotid = gland.startswith("parotid")
    ax = rng.uniform(10.5, 11.8) if parotid else rng.uniform(9.5, 10.6)
    ay = rng.uniform(6.2, 7.2) if parotid else rng.uniform(6.0, 7.0)
    cx = cols * sp / 2.0 + rng.uniform(-0.6, 0.6)
    cy = fascia_mm + ay + rng.uniform(0.3, 0.8)
    x = np.arange(cols) * sp
    y = np.arange(rows)[:, None] * sp
    u, v = (x - cx) / ax, (y - cy) / ay
    if gland.endswith("right"):
        u = -u
    theta = np.arctan2(v, u)
    radius = np.ones_like(theta)
    amps = (0.04, 0.10 if not parotid else 0.04, 0.03)
    for k, amp in zip((2, 3, 4), amps):
        radius += rng.uniform(0.0, amp) * np.cos(k * theta + rng.uniform(0.0, 2.0 * np.pi))
    return np.hypot(u, v) < radius


def _place_foci(rng: np.random.Generator, parenchyma: np.ndarray, sp: float, grade: int) -> list[dict]:
    """Non-overlapping round foci inside the parenchyma (0.4 mm from its edge, 0.5 mm apart)."""
    gen = GRADING["generation"]
    diameters = []
    for size in ("large", "medium", "small"):
        lo, hi = gen[str(grade)][size]
        n = int(rng.integers(lo, hi + 1))
        diameters += list(rng.uniform(*gen["diameter_mm"][size], size=n))
    inside_mm = ndimage.distance_transform_edt(parenchyma) * sp
    rows, cols = parenchyma.shape
    y, x = np.arange(rows, dtype=np.float64)[:, None], np.arange(cols, dtype=np.float64)[None, :]
    placed: list[tuple[float, float, float]] = []  # row px, col px, diameter mm
    distances: list[np.ndarray] = []  # mm from each placed centre
    for d in sorted(diameters, reverse=True):  # largest first: they need the most room
        free = inside_mm >= d / 2.0 + 0.4
        for (_, _, pd), dist in zip(placed, distances):
            free &= dist >= (d + pd) / 2.0 + 0.5
        candidates = np.flatnonzero(free)
        if candidates.size == 0:
            continue  # no room left: the grade is checked by the caller
        row, col = divmod(int(rng.choice(candidates)), cols)
        row, col = row + rng.uniform(-0.3, 0.3), col + rng.uniform(-0.3, 0.3)
        placed.append((row, col, d))
        distances.append(np.hypot(y - row, x - col) * sp)
    return [{"centre_px": [round(row, 3), round(col, 3)], "centre_mm": [round(row * sp, 4), round(col * sp, 4)],
             "diameter_mm": round(d, 4)} for row, col, d in placed]


def _lines(rng: np.random.Generator, n: int, rows: int, cols: int, sp: float, width_mm: float,
           y_range_px: tuple[float, float], max_angle: float) -> np.ndarray:
    """Intensity profile (0-1) of ``n`` straight bright lines crossing the image."""
    y = np.arange(rows, dtype=np.float64)[:, None]
    x = np.arange(cols, dtype=np.float64)[None, :]
    out = np.zeros((rows, cols))
    for _ in range(n):
        y0 = rng.uniform(*y_range_px)
        angle = rng.uniform(-max_angle, max_angle)
        dist = np.abs((y - y0) * np.cos(angle) - (x - cols / 2.0) * np.sin(angle)) * sp
        out = np.maximum(out, np.exp(-0.5 * (dist / (width_mm / 2.0)) ** 2))
    return out


def render_gland(rng_or_seed, gland: str, grade: int, spacing_mm: float = GLAND_SPACING_MM,
                 shape: tuple[int, int] = DEFAULT_SHAPE, acquisition: dict | None = None,
                 inhomogeneity: float | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """One major-gland image of ``grade`` (0-4): (pixels uint8, labels uint8, truth dict).

    The foci listed in the truth are exactly label 4 (circles, centres in pixel coordinates
    row, col with pixel centres at integers); ``scoring.grade_gland`` of their diameters by the
    phantom's grading is ``grade``. ``inhomogeneity`` (log-normal spread of the parenchyma's
    reflectivity; the truth's ``inhomogeneity``) defaults to the grade's value in the grading file.
    """
    rng = _rng(rng_or_seed)
    if gland not in GLANDS:
        raise ValueError(f"gland must be one of {GLANDS}, not {gland!r}")
    grade = int(grade)
    if not 0 <= grade <= 4:
        raise ValueError(f"grade must be 0-4, not {grade}")
    sp = float(spacing_mm) * (acquisition or FIXED_ACQUISITION)["spacing_factor"]
    rows, cols = _check_shape(shape, sp, min_field_mm=24.0)

    skin_mm = rng.uniform(1.2, 1.8)
    fascia_mm = skin_mm + rng.uniform(1.5, 2.5)
    parenchyma = _parenchyma(rng, gland, rows, cols, sp, fascia_mm)
    for _attempt in range(20):
        foci = _place_foci(rng, parenchyma, sp, grade)
        if grade_gland([f["diameter_mm"] for f in foci], GRADING) == grade:
            break
    else:  # the generation table and the gland size make this practically impossible
        raise RuntimeError(f"could not place the foci of a grade {grade} {gland}")

    y = np.arange(rows, dtype=np.float64)[:, None]
    x = np.arange(cols, dtype=np.float64)[None, :]
    focus = np.zeros((rows, cols), bool)
    cyst = np.zeros((rows, cols), bool)
    large_min = GRADING["focus_size_classes_mm"]["large"][0]
    for f in foci:
        (fr, fc), r_px = f["centre_px"], f["diameter_mm"] / 2.0 / sp
        disc = (y - fr) ** 2 + (x - fc) ** 2 < r_px**2
        focus |= disc
        if f["diameter_mm"] >= large_min:
            cyst |= disc
    focus &= parenchyma
    labels = np.zeros((rows, cols), np.uint8)
    labels[parenchyma] = 3
    labels[focus] = 4

    gen = GRADING["generation"][str(grade)]
    depth_px = y * np.ones((1, cols))
    skin = depth_px < skin_mm / sp
    fat = (depth_px >= skin_mm / sp) & (depth_px < fascia_mm / sp)
    refl = np.where(skin, _R["skin"] * np.exp(0.3 * smooth_noise(rng, (rows, cols), (1.0, 3.0))), 0.0)
    refl[:2] = 4.0  # entry echo at the skin surface
    septa = _lines(rng, int(rng.integers(2, 5)), rows, cols, sp, 0.15, (skin_mm / sp, fascia_mm / sp), 0.25)
    refl = np.where(fat, _R["fat"] + _R["septum"] * septa, refl)
    fibres = smooth_noise(rng, (rows, cols), (0.8, 8.0))
    deep = depth_px >= fascia_mm / sp
    refl = np.where(deep, _R["gland_muscle"] * np.clip(1.0 + 0.6 * fibres, 0.1, None), refl)
    fascia = _lines(rng, 1, rows, cols, sp, 0.25, (fascia_mm / sp, fascia_mm / sp), 0.03)
    refl = np.where(deep, refl + _R["fascia"] * fascia, refl)
    s = gen["inhomogeneity"] if inhomogeneity is None else float(inhomogeneity)
    texture = _R["parenchyma"] * np.exp(s * smooth_noise(rng, (rows, cols), (2.5, 2.5)) - s * s / 2.0)
    lo, hi = gen["fibrous_streaks"]
    if hi > 0:
        inside = np.flatnonzero(parenchyma.any(axis=1))
        streaks = _lines(rng, int(rng.integers(lo, hi + 1)), rows, cols, sp, 0.2,
                         (inside[0] + 15, inside[-1] - 15), 0.8)
        texture = texture + _R["fibrosis"] * streaks
    refl = np.where(parenchyma, texture, refl)
    refl = np.where(focus, np.where(cyst, _R["cyst"], _R["focus"]), refl)
    pixels, acquired = _acquire(rng, refl, sp, GLAND_PROBE, acquisition)

    truth = {
        "site": gland,
        "spacing_mm": [sp, sp],
        "shape": [rows, cols],
        "grade": grade,
        "foci": foci,
        "parenchyma_area_mm2": round(float(parenchyma.sum()) * sp * sp, 3),
        "grading": GRADING["name"],
        "skin_mm": round(skin_mm, 4),
        "fascia_mm": round(fascia_mm, 4),
        "gain_db": acquired.pop("gain_db"),
        "inhomogeneity": s,
        "fibrous_streaks": bool(hi > 0),
        "labels": {str(k): v for k, v in LABELS.items()},
        **acquired,
    }
    return pixels, labels, truth


def mucosa_score(thickness_mm: float, echogenicity: str) -> int:
    """0-2: one point for epithelium at or below 0.38 mm, one for heterogeneous hyperechoic epithelium."""
    return int(thickness_mm <= THICKNESS_CUTOFF_MM) + int(echogenicity == "heterogeneous_hyperechoic")


def draw_patient(rng: np.random.Generator, label: int) -> dict:
    """The true values of one phantom patient (1 pSS, 0 control)."""
    median, log_sd = THICKNESS[label]
    thickness = round(float(np.clip(median * np.exp(rng.normal(0.0, log_sd)), *THICKNESS_RANGE_MM)), 3)
    echogenicity = ECHOGENICITY[int(rng.random() < HETEROGENEOUS_FRACTION[label])]
    if label:
        severity = int(rng.choice(5, p=PSS_SEVERITY_P))
        grades = np.clip(severity + rng.choice([-1, 0, 1], size=4, p=[0.25, 0.5, 0.25]), 0, 4)
    else:
        grades = rng.choice(5, size=4, p=CONTROL_GRADE_P)
    age = int(np.clip(np.round(rng.normal(AGE_MEAN, AGE_SD)), 18, 90))
    sex = "F" if rng.random() < FEMALE_FRACTION[label] else "M"
    return {"thickness_mm": thickness, "echogenicity": echogenicity, "grades": [int(g) for g in grades],
            "age": age, "sex": sex}


def _us_regions(shape: tuple[int, int], spacing_mm: float):
    from pydicom.dataset import Dataset

    region = Dataset()
    region.RegionSpatialFormat = 1  # 2-D tissue image
    region.RegionDataType = 1  # tissue
    region.RegionFlags = 0
    region.RegionLocationMinX0 = 0
    region.RegionLocationMinY0 = 0
    region.RegionLocationMaxX1 = int(shape[1]) - 1
    region.RegionLocationMaxY1 = int(shape[0]) - 1
    region.PhysicalUnitsXDirection = 3  # cm
    region.PhysicalUnitsYDirection = 3
    region.PhysicalDeltaX = spacing_mm / 10.0
    region.PhysicalDeltaY = spacing_mm / 10.0
    return [region]


COHORT_COLUMNS = ("patient_id", "label", *map(image_column, SITES), *map(annotation_column, SITES),
                  "thickness_mm_true", "echogenicity_true", "gland_grades_true", "gland_score_true",
                  "mucosa_score_true")
#: The segments each site's annotation holds (a gland's ``focus`` segment may be empty: no foci).
SITE_SEGMENTS = {site: ("epithelium", "submucosa") if site == "mucosa" else ("parenchyma", "focus") for site in SITES}


def generate_cohort(outdir, n_patients: int, seed: int, *, overwrite: bool = False,
                    mucosa_spacing_mm: float = MUCOSA_SPACING_MM, gland_spacing_mm: float = GLAND_SPACING_MM,
                    shape: tuple[int, int] = DEFAULT_SHAPE, acquisition: str = "fixed",
                    legacy_png: bool = False) -> Path:
    """Write ``n_patients`` phantom studies (alternately pSS and control, pSS first) to ``outdir``:
    ``cohort.csv`` (``<site>_image`` and ``<site>_annotation`` columns) and per site
    ``images/<patient_id>_<site>.dcm`` with its truth as a user's annotation would be,
    ``<patient_id>_<site>.seg.nrrd`` (segments ``SITE_SEGMENTS``, with terminology), and ``.json``
    (the phantom's own extra truth: grade, thickness, acquisition; training does not read it).
    ``legacy_png`` also writes ``.png`` and ``_labels.png`` copies for tools that read only PNG; training does not. Patient i depends
    only on (seed, i), so a larger cohort extends a smaller one. ``acquisition`` "fixed" images all
    have the same scanner settings; "varied" draws them per image (``draw_acquisition``) from a
    random stream of their own, independent of the label and the truth, and records them in the
    truth JSON. Returns the path of ``cohort.csv``."""
    from PIL import Image

    from RheumImagingLib.annotations import ImageGeometry, write_segmentation
    from .dicom_write import write_dicom
    from RheumImagingLib.imageio import read_image

    outdir = Path(outdir)
    n_patients = int(n_patients)
    if n_patients < 1:
        raise InputError(outdir, "the number of patients must be at least 1")
    if acquisition not in ACQUISITION_MODES:
        raise InputError(outdir, f"acquisition must be one of {', '.join(ACQUISITION_MODES)}, not {acquisition!r}")
    try:
        _check_shape(shape, mucosa_spacing_mm, 4.5)
        _check_shape(shape, gland_spacing_mm, 24.0)
    except ValueError as exc:
        raise InputError(outdir, str(exc)) from None
    with cohort_writer(outdir, COHORT_COLUMNS, overwrite=overwrite) as (images, writer):
        for i, label, pid in alternating_patients(n_patients, "PSS"):
            patient = draw_patient(np.random.default_rng([int(seed), i]), label)
            paths, annotations = [], []
            for k, site in enumerate(SITES):
                rng = np.random.default_rng([int(seed), i, k + 1])
                acq = draw_acquisition([int(seed), i, k + 1, 1]) if acquisition == "varied" else None
                if site == "mucosa":
                    pixels, labels, truth = render_mucosa(rng, patient["thickness_mm"], patient["echogenicity"],
                                                          mucosa_spacing_mm, shape, acq)
                else:
                    pixels, labels, truth = render_gland(rng, site, patient["grades"][k - 1], gland_spacing_mm, shape,
                                                         acq)
                stem = images / f"{pid}_{site}"
                write_dicom(
                    stem.with_suffix(".dcm"), pixels, modality="US", entropy=[f"sjogrenus-phantom-{seed}", pid, site],
                    study_entropy=[f"sjogrenus-phantom-{seed}", pid], patient_id=pid,
                    patient_age_years=patient["age"], patient_sex=patient["sex"], photometric="MONOCHROME2",
                    elements={"SequenceOfUltrasoundRegions": _us_regions(pixels.shape, truth["spacing_mm"][0]),
                              "SeriesDescription": site, "SeriesNumber": k + 1,
                              "ImageComments": "synthetic phantom, not a patient"},
                )
                geometry = ImageGeometry.of_image(read_image(stem.with_suffix(".dcm")))  # as a reader sees the DICOM
                masks = {name: labels == value for value, name in US_LABELS.items() if name in SITE_SEGMENTS[site]}
                segmentation = stem.parent / f"{stem.name}.seg.nrrd"
                segmentation.unlink(missing_ok=True)  # --overwrite: cohort_writer allowed replacing
                write_segmentation(segmentation, masks, geometry)
                if legacy_png:
                    Image.fromarray(pixels).save(stem.with_suffix(".png"), compress_level=1)
                    Image.fromarray(labels).save(stem.parent / f"{stem.name}_labels.png", compress_level=1)
                with open(stem.with_suffix(".json"), "w") as jf:
                    json.dump({"patient_id": pid, "label": label, **truth}, jf)
                paths.append(f"images/{pid}_{site}.dcm")
                annotations.append(f"images/{segmentation.name}")
            grades = patient["grades"]
            writer.writerow([pid, label, *paths, *annotations, f"{patient['thickness_mm']:.3f}", patient["echogenicity"],
                             ";".join(str(g) for g in grades), sum(grades),
                             mucosa_score(patient["thickness_mm"], patient["echogenicity"])])
    return outdir / "cohort.csv"
