"""B-mode image formation for the ultrasound phantoms: a reflectivity map in, an 8-bit image out.

Why a physical model rather than painted textures: the measurements downstream (echogenicity,
heterogeneity, hypoechoic foci) react to speckle statistics, so the phantom must have them.

Model (per pixel, rows = depth):
1. Scatterers: circular complex Gaussian amplitudes with variance equal to the local intensity
   reflectivity R (many sub-resolution scatterers per cell).
2. Point-spread function: separable, a Gaussian lateral beam profile times a Gaussian-windowed
   complex carrier along depth (pulse-echo, half-wavelength phase period); kernels normalised to
   unit energy, so the mean echo intensity of a uniform region equals R. The envelope |field| of
   fully developed speckle is Rayleigh distributed.
3. Depth attenuation (two-way, ``attenuation_db_cm_mhz`` x frequency) partly undone by the
   time-gain compensation (``tgc_fraction`` of it), plus a complex electronic-noise floor.
4. Log compression: 10 log10 intensity shown over ``dynamic_range_db`` below ``top_db``.
5. Optional speckle reduction: a Gaussian smoothing of the log-compressed image (``speckle_reduction_px``),
   as scanners' speckle-reduction filters smooth the displayed image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Probe:
    """Transducer and scanner settings; the FWHM are the PSF envelope widths in mm."""

    frequency_mhz: float
    axial_fwhm_mm: float
    lateral_fwhm_mm: float
    attenuation_db_cm_mhz: float = 0.5
    tgc_fraction: float = 0.9
    noise_db: float = -38.0  # electronic noise intensity relative to R = 1
    top_db: float = 12.0  # intensity shown as 255
    dynamic_range_db: float = 45.0  # intensity top_db - dynamic_range_db shown as 0


_FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
_SOUND_SPEED_MM_US = 1.54


def _gaussian_kernel(sigma_px: float) -> tuple[np.ndarray, np.ndarray]:
    half = max(1, int(np.ceil(3.0 * sigma_px)))
    x = np.arange(-half, half + 1, dtype=np.float64)
    return x, np.exp(-0.5 * (x / sigma_px) ** 2)


def bmode(rng: np.random.Generator, reflectivity: np.ndarray, spacing_mm: tuple[float, float], probe: Probe,
          gain_db: float = 0.0, speckle_reduction_px: float = 0.0) -> np.ndarray:
    """Simulate a B-mode image (uint8, rows x cols) of ``reflectivity`` (linear intensity, >= 0)."""
    rows, cols = reflectivity.shape
    dy, dx = spacing_mm
    amplitude = np.sqrt(np.maximum(reflectivity, 0.0))
    noise = rng.standard_normal((2, rows, cols))
    re, im = noise[0] * amplitude, noise[1] * amplitude  # E|s|^2 = 2R; the kernel norm halves it

    _, lateral = _gaussian_kernel(probe.lateral_fwhm_mm * _FWHM_TO_SIGMA / dx)
    z, envelope = _gaussian_kernel(probe.axial_fwhm_mm * _FWHM_TO_SIGMA / dy)
    half_wavelength_px = 0.5 * _SOUND_SPEED_MM_US / probe.frequency_mhz / dy
    phase = 2.0 * np.pi * z / half_wavelength_px
    ka_re, ka_im = envelope * np.cos(phase), envelope * np.sin(phase)
    norm = np.sqrt(2.0 * np.sum(lateral**2) * np.sum(envelope**2))
    lateral = lateral / norm

    re = ndimage.convolve1d(re, lateral, axis=1, mode="reflect")
    im = ndimage.convolve1d(im, lateral, axis=1, mode="reflect")
    f_re = (ndimage.convolve1d(re, ka_re, axis=0, mode="reflect")
            - ndimage.convolve1d(im, ka_im, axis=0, mode="reflect"))
    f_im = (ndimage.convolve1d(re, ka_im, axis=0, mode="reflect")
            + ndimage.convolve1d(im, ka_re, axis=0, mode="reflect"))

    depth_cm = (np.arange(rows) + 0.5) * dy / 10.0
    loss_db = 2.0 * probe.attenuation_db_cm_mhz * probe.frequency_mhz * depth_cm * (1.0 - probe.tgc_fraction)
    scale = (10.0 ** ((gain_db - loss_db) / 20.0))[:, None]
    electronic = rng.standard_normal((2, rows, cols))
    noise_amp = np.sqrt(0.5 * 10.0 ** (probe.noise_db / 10.0))
    intensity = (f_re * scale + noise_amp * electronic[0]) ** 2 + (f_im * scale + noise_amp * electronic[1]) ** 2

    db = 10.0 * np.log10(intensity + 1e-12)
    if speckle_reduction_px > 0:
        db = ndimage.gaussian_filter(db, speckle_reduction_px, mode="reflect")
    gray = (db - (probe.top_db - probe.dynamic_range_db)) * (255.0 / probe.dynamic_range_db)
    return np.clip(np.round(gray), 0, 255).astype(np.uint8)


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma_px: tuple[float, float]) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian random field with the given correlation widths (rows, cols)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_px, mode="reflect")
    return (field - field.mean()) / (field.std() + 1e-12)
