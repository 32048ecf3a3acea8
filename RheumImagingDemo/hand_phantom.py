"""Synthetic posteroanterior hand radiographs with exact ground truth (phantoms, not patients).

Why: no hand radiograph can be downloaded here, and every later step (metacarpal contours,
texture score, cohort statistics) needs images whose truth is known.

Model: a right hand seen from the dorsal side, fingers up (distal = top of the image, thumb
at the left, so MC2 is left of MC3). Five metacarpals and five proximal phalanges are tubes
of analytic outline (rounded heads, broad bases) projected through a cortical shell and a
trabecular core; the core density carries a 2-D fractional Brownian motion (``fbm.py``).
Soft tissue is a smooth envelope. The detector counts Poisson quanta through
exp(-attenuation) and stores the log signal (bone bright, 12 bits), as a CR plate does.

RA patients differ from controls by (a) the Hurst exponent of the trabecular fBm (higher,
i.e. smoother/coarser) and (b) lower trabecular density near the metacarpal heads
(periarticular osteopenia). ``effect`` scales both: "strong" (1.0) is obvious, "weak"
gives a texture-statistic AUROC about 0.7 (the paper's 0.68), or any float in [0, 1].

Everything physical is in millimetres: the hand (metacarpals ~50-57 mm long, ~8 mm wide at
mid-shaft, ~10 mm at the head), the trabecular texture (fBm referenced at 2 mm, outer scale
12 mm) and the exposure (quanta per mm^2), so the pixel spacing changes the resolution, not
the anatomy or the texture. Default image: 512 x 416 pixels at 0.25 mm (128 x 104 mm). A
size alone keeps that field of view (the hand scales with the image); a spacing alone keeps
it too (the size follows); both give a field of view of size x spacing.

Acquisition (``acquisition="varied"``): per image, drawn independently of the label, a pixel
spacing in 0.1-0.2 mm (CR/DR hand plates), a Gaussian detector blur and the unsharp-mask
edge enhancement vendors apply (``ACQUISITION``); "fixed" is 0.25 mm, no blur, no processing.
Laterality: the model is a right hand; a left hand is its mirror image (thumb at the right),
written with DICOM ImageLaterality L and its truth contours mirrored too (point 0 still the
distal tip; the points then run clockwise on screen).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from RheumImagingLib.cohort_folder import alternating_patients, cohort_writer
from RheumImagingLib.errors import InputError

from .fbm import fbm_field

DEFAULT_SIZE = (512, 416)
DEFAULT_SPACING_MM = 0.25
FIELD_MM = (DEFAULT_SIZE[0] * DEFAULT_SPACING_MM, DEFAULT_SIZE[1] * DEFAULT_SPACING_MM)
TEXTURE_REF_LAG_MM = 2.0  # the fBm's contrast is fixed at this lag ...
TEXTURE_OUTER_MM = 12.0  # ... and it is fBm below this scale
TEXTURE_GRID_MM = 0.1  # the texture is synthesised on this grid, centred on the image, and sampled from it
QUANTA_PER_MM2 = (96000.0, 192000.0)  # air exposure range (6000-12000 quanta per 0.25 mm pixel)
# acquisition="varied": uniform ranges of each image's acquisition
ACQUISITION = {"spacing_mm": (0.10, 0.20), "blur_sigma_mm": (0.03, 0.15),
               "unsharp_radius_mm": (1.0, 4.0), "unsharp_amount": (0.0, 1.5)}
ACQUISITIONS = ("fixed", "varied")
LATERALITIES = ("right", "left", "mixed")
N_CONTOUR = 40
EFFECTS = {"strong": 1.0, "weak": 0.2}  # weak: variogram-Hurst AUROC 0.63 on 400 phantoms (texture in mm)
HURST_CONTROL = 0.30  # mean Hurst exponent of control trabecular texture
HURST_SD = 0.05  # between-patient spread of the Hurst exponent
HURST_SHIFT = 0.35  # RA minus control at effect 1.0
PERIARTICULAR_LOSS = 0.30  # RA loss of trabecular density at the heads at effect 1.0
TEXTURE_AMPLITUDE = 0.45  # relative std of trabecular density
FEMALE_FRACTION = 0.75
AGE_MEAN, AGE_SD = 55.0, 12.0

# Canonical hand in default pixels: (proximal x, y), (distal x, y) of each metacarpal and the
# length of the proximal phalanx that continues it; index 0 is the thumb.
_RAYS = (
    ((150.0, 438.0), (78.0, 290.0), 105.0),
    ((168.0, 448.0), (140.0, 222.0), 140.0),
    ((206.0, 452.0), (200.0, 234.0), 150.0),
    ((242.0, 458.0), (256.0, 262.0), 140.0),
    ((275.0, 462.0), (306.0, 284.0), 112.0),
)
_JOINT_GAP = 10.0


@dataclass(frozen=True)
class _Bone:
    """A tubular bone: proximal end ``p``, unit direction ``d`` toward distal, length."""

    p: np.ndarray
    d: np.ndarray
    length: float
    shaft: float  # half-width at mid-shaft (pixels)
    head: float  # relative widening at the distal end
    base: float  # relative widening at the proximal end

    @property
    def n(self) -> np.ndarray:
        return np.array([-self.d[1], self.d[0]])

    def half_width(self, u: np.ndarray) -> np.ndarray:
        """Outline half-width at distance ``u`` from the proximal end: zero at both ends, a
        round distal cap (head) and a squarer proximal cap (base)."""
        s = np.clip(u / self.length, 0.0, 1.0)
        w = self.shaft * (1.0 + self.base * np.exp(-(s / 0.12) ** 2) + self.head * np.exp(-((1.0 - s) / 0.14) ** 2))
        r_head = self.shaft * (1.0 + self.head)
        r_base = 0.8 * self.shaft * (1.0 + self.base)
        u = np.clip(u, 0.0, self.length)
        dist_d = np.clip(u - (self.length - r_head), 0.0, None) / r_head
        dist_p = np.clip(r_base - u, 0.0, None) / r_base
        cap = np.sqrt(np.clip(1.0 - dist_d**2, 0.0, None)) * np.clip(1.0 - dist_p**3, 0.0, None) ** (1.0 / 3.0)
        return w * cap

    def outline(self, n: int = 2000) -> np.ndarray:
        """Dense closed outline (x, y), starting at the distal tip, counter-clockwise on screen."""
        t = np.linspace(0.0, 1.0, n // 2 + 1)
        u = self.length * (1.0 + np.cos(np.pi * t)) / 2.0  # L -> 0, dense at both ends
        h = self.half_width(u)
        side_a = self.p + u[:, None] * self.d + h[:, None] * self.n
        side_b = self.p + u[::-1, None] * self.d - h[::-1, None] * self.n
        pts = np.concatenate([side_a, side_b[1:-1]])
        if _signed_area(pts) > 0:  # y is down: counter-clockwise on screen has negative area
            pts = np.concatenate([pts[:1], pts[:0:-1]])
        return pts


def _signed_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def _resample_closed(pts: np.ndarray, n: int) -> np.ndarray:
    """``n`` points equally spaced in arc length along a closed polyline, from ``pts[0]``."""
    loop = np.concatenate([pts, pts[:1]])
    seg = np.hypot(*np.diff(loop, axis=0).T)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    target = np.arange(n) * s[-1] / n
    return np.stack([np.interp(target, s, loop[:, 0]), np.interp(target, s, loop[:, 1])], axis=1)


def _bone_truth(bone: _Bone) -> dict:
    dense = bone.outline()
    contour = _resample_closed(dense, N_CONTOUR)
    u = (dense - bone.p) @ bone.d
    cut = 2.0 * bone.length / 3.0
    keep = u >= cut
    # Dense outline runs tip -> one side -> base -> other side -> tip: rotate so the kept
    # (distal) run is contiguous, then add the two exact cut points.
    start = int(np.argmin(keep))  # first point below the cut
    order = np.roll(np.arange(len(dense)), -start)
    run = dense[order][keep[order]]
    h_cut = float(bone.half_width(np.array([cut]))[0])
    ends = [bone.p + cut * bone.d + sgn * h_cut * bone.n for sgn in (1.0, -1.0)]
    if np.linalg.norm(ends[0] - run[0]) > np.linalg.norm(ends[1] - run[0]):
        ends.reverse()
    third = np.concatenate([ends[:1], run[:: max(1, len(run) // 60)], ends[1:]])
    return {
        "contour": _round(contour),
        "axis": {"distal": _round(bone.p + bone.length * bone.d), "proximal": _round(bone.p)},
        "distal_third": _round(third),
    }


def _round(a) -> list:
    return np.round(np.asarray(a, dtype=float), 3).tolist()


def parse_effect(effect) -> tuple[str, float]:
    """("strong"|"weak"|"custom", level in [0, 1]) from a name or a number."""
    if isinstance(effect, str) and effect.strip().lower() in EFFECTS:
        name = effect.strip().lower()
        return name, EFFECTS[name]
    try:
        level = float(effect)
    except (TypeError, ValueError):
        raise ValueError(f"effect must be 'strong', 'weak' or a number in [0, 1], not {effect!r}") from None
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"effect must be in [0, 1], not {level}")
    return "custom", level


@dataclass(frozen=True)
class Acquisition:
    """How one image was taken: pixel size, detector blur (Gaussian sigma) and the vendor's
    unsharp mask (image + amount * (image - Gaussian(image, radius)) on the log signal)."""

    spacing_mm: float | None = None
    blur_sigma_mm: float = 0.0
    unsharp_radius_mm: float = 0.0
    unsharp_amount: float = 0.0


def draw_acquisition(rng: np.random.Generator) -> Acquisition:
    """One image's acquisition from the ``ACQUISITION`` ranges (give it an rng of its own,
    so that it is independent of the label and of the patient)."""
    return Acquisition(**{k: float(f"{rng.uniform(*r):.4g}") for k, r in ACQUISITION.items()})


def _hand(rng: np.random.Generator, rows: int, cols: int, k: float) -> list[tuple[str, _Bone]]:
    """The ten bones of one patient's hand, with pose and bone-length variation; ``k`` pixels
    per default (0.25 mm) pixel."""
    centre_default = np.array([DEFAULT_SIZE[1] / 2.0, DEFAULT_SIZE[0] / 2.0])
    centre = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
    angle = np.deg2rad(rng.uniform(-4.0, 4.0))
    scale = k * rng.uniform(0.94, 1.06)
    shift = rng.uniform(-8.0, 8.0, size=2) * k
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def place(xy):
        return centre + shift + scale * (rot @ (np.asarray(xy) - centre_default))

    bones = []
    for ray, (prox, dist, pp_len) in enumerate(_RAYS, start=1):
        prox, dist = np.asarray(prox), np.asarray(dist)
        mc_len = np.linalg.norm(dist - prox) * rng.uniform(0.95, 1.05)
        d = (dist - prox) / np.linalg.norm(dist - prox)
        p0, p1 = place(prox), place(prox + mc_len * d)
        dd = (p1 - p0) / np.linalg.norm(p1 - p0)
        length = float(np.linalg.norm(p1 - p0))
        shaft = 0.072 * length * rng.uniform(0.93, 1.07) * (0.85 if ray == 1 else 1.0)
        bones.append((f"MC{ray}", _Bone(p0, dd, length, shaft, head=0.40, base=0.30)))
        # Proximal phalanx: continues the ray, fanned slightly away from MC3.
        fan = np.deg2rad(3.0 * (ray - 3)) if ray > 1 else np.deg2rad(-4.0)
        frot = np.array([[np.cos(fan), -np.sin(fan)], [np.sin(fan), np.cos(fan)]])
        pd = frot @ dd
        pp_length = pp_len * scale * rng.uniform(0.95, 1.05)
        pp0 = p1 + _JOINT_GAP * scale * pd
        bones.append((f"PP{ray}", _Bone(pp0, pd, pp_length, 0.085 * pp_length * 0.95, head=0.22, base=0.45)))
    return bones


def _mirror_truth(truth: dict, cols: int) -> dict:
    """Bone truth of the mirrored (left) hand: x -> cols - 1 - x, point order kept."""
    def flip(points):
        a = np.asarray(points, dtype=float)
        a[..., 0] = cols - 1 - a[..., 0]
        return _round(a)

    return {"contour": flip(truth["contour"]), "distal_third": flip(truth["distal_third"]),
            "axis": {end: flip(xy) for end, xy in truth["axis"].items()}}


def _bone_attenuation(bone: _Bone, name: str, texture: np.ndarray, out: np.ndarray, periarticular: float) -> None:
    """Add the projected attenuation (pixel-length units) of one bone to ``out``."""
    rows, cols = out.shape
    ends = np.array([bone.p, bone.p + bone.length * bone.d])
    pad = bone.shaft * 1.6 + 2
    x0, y0 = np.floor(ends.min(axis=0) - pad).astype(int)
    x1, y1 = np.ceil(ends.max(axis=0) + pad).astype(int)
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, cols - 1), min(y1, rows - 1)
    if x1 < x0 or y1 < y0:
        return
    yy, xx = np.mgrid[y0 : y1 + 1, x0 : x1 + 1].astype(np.float64)
    rx, ry = xx - bone.p[0], yy - bone.p[1]
    u = rx * bone.d[0] + ry * bone.d[1]
    v = rx * bone.n[0] + ry * bone.n[1]
    inside_u = (u >= 0) & (u <= bone.length)
    h = np.where(inside_u, bone.half_width(u), 0.0)
    s = np.clip(u / bone.length, 0.0, 1.0)
    cortex = h * (0.10 + 0.32 * np.exp(-(((s - 0.5) / 0.22) ** 2)))  # thick mid-shaft, thin at the ends
    r_in = h - cortex
    v2 = v * v
    outer = np.sqrt(np.clip(h * h - v2, 0.0, None))
    inner = np.sqrt(np.clip(r_in * r_in - v2, 0.0, None))
    trab_density = np.clip(0.3 + 0.7 * (np.exp(-((s / 0.2) ** 2)) + np.exp(-(((1 - s) / 0.3) ** 2))), 0.0, 1.0)
    if name.startswith("MC"):
        trab_density = trab_density * (1.0 - periarticular * np.exp(-(((1 - s) / 0.22) ** 2)))
    tex = np.clip(1.0 + TEXTURE_AMPLITUDE * texture[y0 : y1 + 1, x0 : x1 + 1], 0.05, None)
    out[y0 : y1 + 1, x0 : x1 + 1] += 1.0 * 2.0 * (outer - inner) + 0.45 * trab_density * tex * 2.0 * inner


def _soft_tissue(bones: list[tuple[str, _Bone]], shape: tuple[int, int], k: float) -> np.ndarray:
    """Projected soft-tissue thickness (pixels): finger tubes around each ray plus a palm;
    ``k`` pixels per default pixel."""
    rows, cols = shape
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    thick = np.zeros(shape)
    by = dict(bones)
    for ray in range(1, 6):
        mc, pp = by[f"MC{ray}"], by[f"PP{ray}"]
        a = mc.p + 0.3 * mc.length * mc.d
        b = pp.p + pp.length * 2.2 * pp.d  # the finger runs on past the proximal phalanx
        ab = b - a
        t = np.clip(((xx - a[0]) * ab[0] + (yy - a[1]) * ab[1]) / (ab @ ab), 0.0, 1.0)
        dist = np.hypot(xx - a[0] - t * ab[0], yy - a[1] - t * ab[1])
        radius = 1.9 * pp.shaft * (1.0 + pp.base)
        thick = np.maximum(thick, 2.0 * np.sqrt(np.clip(radius**2 - dist**2, 0.0, None)))
    heads = np.array([by[f"MC{r}"].p + by[f"MC{r}"].length * by[f"MC{r}"].d for r in range(2, 6)])
    bases = np.array([by[f"MC{r}"].p for r in range(2, 6)])
    span = heads.mean(axis=0) - bases.mean(axis=0)
    centre = bases.mean(axis=0) + 0.3 * span
    axis_y = span / np.linalg.norm(span)
    axis_x = np.array([-axis_y[1], axis_y[0]])
    semi_x = 0.5 * np.ptp(heads[:, 0]) + 34.0 * k
    semi_y = 0.85 * np.linalg.norm(span)
    qx = ((xx - centre[0]) * axis_x[0] + (yy - centre[1]) * axis_x[1]) / semi_x
    qy = ((xx - centre[0]) * axis_y[0] + (yy - centre[1]) * axis_y[1]) / semi_y
    palm = 2.0 * 0.45 * semi_x * np.sqrt(np.clip(1.0 - qx**2 - qy**2, 0.0, None)) ** 0.5
    thick = np.maximum(thick, palm)
    return ndimage.gaussian_filter(thick, 3.0 * k)


def _texture(rng: np.random.Generator, hurst: float, rows: int, cols: int, spacing: float) -> np.ndarray:
    """The trabecular fBm sampled at the image's pixels. It is synthesised in mm on a
    ``TEXTURE_GRID_MM`` grid covering the default field of view (or the image's, if larger)
    around the image centre, so one seed gives the same texture at every pixel spacing; a
    coarser pixel averages it (Gaussian, sigma 0.5 * sqrt(spacing^2 - grid^2) mm)."""
    grid = TEXTURE_GRID_MM
    shape = tuple(int(np.ceil(max(f, n * spacing) / grid)) + 8 for f, n in zip(FIELD_MM, (rows, cols)))
    field = fbm_field(rng, shape, hurst, ref_lag=TEXTURE_REF_LAG_MM, outer_scale=TEXTURE_OUTER_MM, spacing=grid)
    if spacing > grid:
        field = ndimage.gaussian_filter(field, 0.5 * np.sqrt(spacing**2 - grid**2) / grid, mode="wrap")
    scale = spacing / grid
    yy = ((np.arange(rows) - (rows - 1) / 2.0) * scale + (shape[0] - 1) / 2.0)[:, None]
    xx = ((np.arange(cols) - (cols - 1) / 2.0) * scale + (shape[1] - 1) / 2.0)[None, :]
    return ndimage.map_coordinates(field, np.broadcast_arrays(yy, xx), order=1, mode="grid-wrap")


def _geometry(size, pixel_spacing_mm) -> tuple[int, int, float]:
    """(rows, cols, spacing in mm): see the module docstring for the defaults."""
    if pixel_spacing_mm is not None and not float(pixel_spacing_mm) > 0:
        raise ValueError(f"pixel spacing must be positive, not {pixel_spacing_mm}")
    if size is None:
        spacing = float(pixel_spacing_mm or DEFAULT_SPACING_MM)
        size = (round(FIELD_MM[0] / spacing), round(FIELD_MM[1] / spacing))
    rows, cols = (int(size[0]), int(size[1]))
    if rows < 64 or cols < 52:
        raise ValueError(f"image size {rows}x{cols} is too small (at least 64x52)")
    if pixel_spacing_mm is None:
        spacing = DEFAULT_SPACING_MM * max(DEFAULT_SIZE[0] / rows, DEFAULT_SIZE[1] / cols)
    else:
        spacing = float(pixel_spacing_mm)
    return rows, cols, float(f"{spacing:.6g}")  # exactly what the DICOM decimal string holds


def render_hand(rng_or_seed, label: int, effect="strong", *, size: tuple[int, int] | None = None,
                pixel_spacing_mm: float | None = None, acquisition: Acquisition | None = None,
                laterality: str = "right") -> tuple[np.ndarray, dict]:
    """One phantom radiograph: (uint16 rows x cols, MONOCHROME2 sense: bone bright, 12 bits;
    ground-truth dict as written to ``<patient_id>.json``, without the patient id).

    Contours: 40 points in pixel coordinates (x = column, y = row, pixel centres at
    integers), point 0 at the distal tip, running counter-clockwise as seen on screen
    (x right, y down; from the tip the points first move to the left of the image) for a
    right hand, clockwise for a left one. ``acquisition.spacing_mm``, when set, is the
    pixel spacing (``pixel_spacing_mm`` and ``size`` must then be None).
    """
    rng = rng_or_seed if isinstance(rng_or_seed, np.random.Generator) else np.random.default_rng(rng_or_seed)
    effect_name, level = parse_effect(effect)
    acquisition = acquisition or Acquisition()
    if acquisition.spacing_mm is not None:
        if size is not None or pixel_spacing_mm is not None:
            raise ValueError("a varied acquisition draws the pixel spacing: give no size or pixel spacing")
        pixel_spacing_mm = acquisition.spacing_mm
    if laterality not in ("right", "left"):
        raise ValueError(f"laterality must be right or left, not {laterality!r}")
    rows, cols, spacing = _geometry(size, pixel_spacing_mm)
    k = DEFAULT_SPACING_MM / spacing  # pixels per default pixel: the hand and texture are in mm
    label = int(label)

    bones = _hand(rng, rows, cols, k)
    hurst = float(np.clip(rng.normal(HURST_CONTROL + label * level * HURST_SHIFT, HURST_SD), 0.05, 0.95))
    periarticular = label * level * PERIARTICULAR_LOSS
    texture = _texture(rng, hurst, rows, cols, spacing)

    bone_att = np.zeros((rows, cols))
    for name, bone in bones:
        _bone_attenuation(bone, name, texture, bone_att, periarticular)
    soft = _soft_tissue(bones, (rows, cols), k)
    mu_bone = rng.uniform(0.036, 0.044) / k  # per default pixel of path length
    mu_soft = rng.uniform(0.0075, 0.0095) / k
    attenuation = mu_bone * bone_att + mu_soft * soft
    quanta = rng.uniform(*QUANTA_PER_MM2) * spacing**2  # mean counts per pixel in air
    expected = quanta * np.exp(-attenuation)
    if acquisition.blur_sigma_mm > 0:  # the detector spreads the signal before it is counted
        expected = ndimage.gaussian_filter(expected, acquisition.blur_sigma_mm / spacing, mode="nearest")
    counts = rng.poisson(expected).astype(np.float64)
    log_signal = np.log(quanta) - np.log(np.maximum(counts, 0.5))  # attenuation + quantum noise
    if acquisition.unsharp_amount > 0:  # the vendor's edge enhancement
        smooth = ndimage.gaussian_filter(log_signal, acquisition.unsharp_radius_mm / spacing, mode="nearest")
        log_signal = log_signal + acquisition.unsharp_amount * (log_signal - smooth)
    gain = rng.uniform(1150.0, 1350.0)
    offset = rng.uniform(150.0, 350.0)
    pixels = np.clip(np.round(offset + gain * log_signal), 0, 4095).astype(np.uint16)
    bone_truth = {name: _bone_truth(bone) for name, bone in bones if name in ("MC2", "MC3", "MC4")}
    if laterality == "left":
        pixels = np.ascontiguousarray(pixels[:, ::-1])
        bone_truth = {name: _mirror_truth(t, cols) for name, t in bone_truth.items()}

    truth = {
        "label": label,
        "pixel_spacing_mm": [spacing, spacing],
        "shape": [rows, cols],
        "laterality": laterality,
        "acquisition": {k: v for k, v in vars(acquisition).items() if k != "spacing_mm"},
        "effect": {
            "name": effect_name,
            "level": level,
            "hurst": round(hurst, 6),
            "texture_amplitude": TEXTURE_AMPLITUDE,
            "periarticular_density": round(1.0 - periarticular, 6),
        },
        "bones": bone_truth,
    }
    return pixels, truth


def _demographics(rng: np.random.Generator) -> tuple[int, str]:
    age = int(np.clip(np.round(rng.normal(AGE_MEAN, AGE_SD)), 20, 90))
    sex = "F" if rng.random() < FEMALE_FRACTION else "M"
    return age, sex


def generate_cohort(outdir, n_patients: int, seed: int, effect="strong", *, size: tuple[int, int] | None = None,
                    pixel_spacing_mm: float | None = None, photometric: str = "MONOCHROME1",
                    acquisition: str = "fixed", laterality: str = "right", overwrite: bool = False,
                    legacy_png: bool = False) -> Path:
    """Write ``n_patients`` phantoms (alternately RA and control, RA first) to ``outdir``:
    ``cohort.csv`` (``patient_id,label,image,annotation,age,sex``) and ``images/<id>.dcm`` with its
    truth as a user's annotation would be, ``images/<id>.mrk.json`` (closed curves MC2-MC4, 40 points
    from the distal tip, as Slicer reads them on the DICOM), and ``images/<id>.json`` (the phantom's
    own extra truth: texture effect, acquisition; training does not read it). ``legacy_png`` also
    writes a PNG twin, for tools that read only PNG (e.g. the bundles run alone); training does not need it. Patient i depends only on (seed, i), so a
    larger cohort extends a smaller one. Returns the path of ``cohort.csv``.

    ``acquisition``: "fixed" or "varied" (see the module docstring); ``laterality``: "right",
    "left" or "mixed" (each patient's hand drawn at random). Both are drawn from a random
    stream of their own, independent of the label and of the patient's anatomy and texture."""
    from PIL import Image

    from RheumImagingLib.annotations import ImageGeometry, write_curves
    from .dicom_write import write_dicom
    from RheumImagingLib.imageio import read_image

    outdir = Path(outdir)
    n_patients = int(n_patients)
    if n_patients < 1:
        raise InputError(outdir, "the number of patients must be at least 1")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise InputError(outdir, f"photometric must be MONOCHROME1 or MONOCHROME2, not {photometric}")
    try:
        parse_effect(effect)
        _geometry(size, pixel_spacing_mm)
        if acquisition not in ACQUISITIONS:
            raise ValueError(f"acquisition must be one of {', '.join(ACQUISITIONS)}, not {acquisition!r}")
        if laterality not in LATERALITIES:
            raise ValueError(f"laterality must be one of {', '.join(LATERALITIES)}, not {laterality!r}")
        if acquisition == "varied" and (size is not None or pixel_spacing_mm is not None):
            raise ValueError("a varied acquisition draws each image's pixel spacing: give no size or pixel spacing")
    except ValueError as exc:
        raise InputError(outdir, str(exc)) from None
    columns = ["patient_id", "label", "image", "annotation", "age", "sex"]
    with cohort_writer(outdir, columns, overwrite=overwrite) as (images, writer):
        for i, label, pid in alternating_patients(n_patients, "RA"):
            rng = np.random.default_rng([int(seed), i])
            scanner = np.random.default_rng([int(seed), i, 1])  # acquisition and laterality: their own stream
            age, sex = _demographics(rng)
            taken = draw_acquisition(scanner) if acquisition == "varied" else None
            side = laterality if laterality != "mixed" else ("left" if scanner.random() < 0.5 else "right")
            pixels, truth = render_hand(rng, label, effect, size=size, pixel_spacing_mm=pixel_spacing_mm,
                                        acquisition=taken, laterality=side)
            stored = (4095 - pixels).astype(np.uint16) if photometric == "MONOCHROME1" else pixels
            spacing = truth["pixel_spacing_mm"]
            write_dicom(
                images / f"{pid}.dcm", stored, modality="CR", entropy=[f"rheumtexture-phantom-{seed}", pid],
                study_entropy=[f"rheumtexture-phantom-{seed}", pid], patient_id=pid, patient_age_years=age,
                patient_sex=sex, photometric=photometric,
                elements={"BitsStored": 12, "HighBit": 11, "ImagerPixelSpacing": [f"{spacing[0]:.6g}", f"{spacing[1]:.6g}"],
                          "BodyPartExamined": "HAND", "ViewPosition": "PA",
                          "ImageLaterality": "L" if side == "left" else "R",
                          "ImageComments": "synthetic phantom, not a patient"},
            )
            geometry = ImageGeometry.of_image(read_image(images / f"{pid}.dcm"))  # as a reader of the DICOM sees it
            (images / f"{pid}.mrk.json").unlink(missing_ok=True)  # --overwrite: cohort_writer allowed replacing
            write_curves(images / f"{pid}.mrk.json", {b: t["contour"] for b, t in truth["bones"].items()}, geometry)
            if legacy_png:
                Image.fromarray(np.round(pixels * (255.0 / 4095.0)).astype(np.uint8)).save(images / f"{pid}.png")
            with open(images / f"{pid}.json", "w") as jf:
                json.dump({"patient_id": pid, **truth}, jf)
            writer.writerow([pid, label, f"images/{pid}.dcm", f"images/{pid}.mrk.json", age, sex])
    return outdir / "cohort.csv"
