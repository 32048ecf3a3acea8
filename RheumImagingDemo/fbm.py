"""2-D fractional Brownian motion: synthesis for phantom trabecular texture, and the
classical variogram estimate of its Hurst exponent used to check that texture.

fBm with Hurst exponent H has power spectrum S(f) ~ f^-(2H+2) and variogram
gamma(h) = E[(Z(x+h)-Z(x))^2] ~ h^(2H): larger H is smoother (coarser) texture.
"""

from __future__ import annotations

import numpy as np


def fbm_field(rng: np.random.Generator, shape: tuple[int, int], hurst: float, *, ref_lag: float = 8.0,
              outer_scale: float = 48.0, spacing: float = 1.0) -> np.ndarray:
    """A zero-mean fBm-like field of ``shape`` by spectral synthesis (one real FFT).

    ``ref_lag`` and ``outer_scale`` are lengths in the unit of ``spacing`` (the pixel size):
    with spacing in mm the texture is defined in mm, and a finer grid samples the same
    texture at a higher resolution (adding its finer scales) instead of shrinking it.
    Amplitude (f^2 + f_c^2)^-(H+1)/2 with Gaussian complex coefficients: fBm at scales below
    ``outer_scale`` (f_c = 1/outer_scale keeps the total variance finite). The field
    is scaled so its expected horizontal variogram at ``ref_lag`` is 1, so fields of
    different H have the same contrast at that scale and differ in how it changes with
    scale (their slope), not in overall strength. The field is periodic, which does not
    matter inside a bone far from the borders.
    """
    rows, cols = shape
    fy = np.fft.fftfreq(rows, d=spacing)[:, None]
    fx = np.fft.rfftfreq(cols, d=spacing)[None, :]
    power = (fy**2 + fx**2 + (1.0 / outer_scale) ** 2) ** -(hurst + 1.0)
    power[0, 0] = 0.0
    weight = np.full(fx.shape, 2.0)  # rfft halves the spectrum: interior columns count twice
    weight[0, 0] = 1.0
    if cols % 2 == 0:
        weight[0, -1] = 1.0
    gamma_ref = np.sum(weight * power * (1.0 - np.cos(2 * np.pi * fx * ref_lag)))
    coeffs = rng.standard_normal((rows, fx.shape[1])) + 1j * rng.standard_normal((rows, fx.shape[1]))
    field = np.fft.irfft2(coeffs * np.sqrt(power), s=(rows, cols))
    # E|coeff|^2 = 2 and irfft2 divides by rows*cols: expected variogram = 2 * 2 * sum / (rows*cols)^2.
    return field * (rows * cols) / np.sqrt(4.0 * gamma_ref)


def variogram_hurst(image: np.ndarray, mask: np.ndarray, lags=(2, 3, 4, 6, 8, 12)) -> float:
    """Hurst exponent estimated from the variogram of ``image`` inside ``mask``.

    gamma(h) is averaged over horizontal and vertical pixel pairs with both ends in the
    mask; H is half the least-squares slope of log gamma on log h. Quantum noise adds a
    constant nugget that biases H downward equally for every image of the same exposure.
    """
    img = np.asarray(image, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    logs_h, logs_g = [], []
    for h in lags:
        sq, n = 0.0, 0
        for a, b, ma, mb in (
            (img[:, h:], img[:, :-h], mask[:, h:], mask[:, :-h]),
            (img[h:, :], img[:-h, :], mask[h:, :], mask[:-h, :]),
        ):
            both = ma & mb
            d = (a - b)[both]
            sq += float(np.dot(d, d))
            n += d.size
        if n < 10 or sq <= 0:
            continue
        logs_h.append(np.log(h))
        logs_g.append(np.log(sq / n))
    if len(logs_h) < 2:
        raise ValueError("mask too small for a variogram estimate")
    slope = np.polyfit(logs_h, logs_g, 1)[0]
    return float(slope / 2.0)
