"""2-D fractional Brownian motion: synthesis for phantom trabecular texture, and the
classical variogram estimate of its Hurst exponent used to check that texture.

fBm with Hurst exponent H has power spectrum S(f) ~ f^-(2H+2) and variogram
gamma(h) = E[(Z(x+h)-Z(x))^2] ~ h^(2H): larger H is smoother (coarser) texture.
"""

from __future__ import annotations

import numpy as np


def fbm_field(rng: np.random.Generator, shape: tuple[int, int], hurst: float) -> np.ndarray:
    """A zero-mean, unit-std fBm-like field of ``shape`` by spectral synthesis (one real FFT).

    Amplitude f^-(H+1) with Gaussian complex coefficients; the DC term is removed.
    The field is periodic, which does not matter inside a bone far from the borders.
    """
    rows, cols = shape
    fy = np.fft.fftfreq(rows)[:, None]
    fx = np.fft.rfftfreq(cols)[None, :]
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    amplitude = f ** -(hurst + 1.0)
    amplitude[0, 0] = 0.0
    coeffs = rng.standard_normal((rows, fx.shape[1])) + 1j * rng.standard_normal((rows, fx.shape[1]))
    field = np.fft.irfft2(coeffs * amplitude, s=(rows, cols))
    field -= field.mean()
    return field / field.std()


def variogram_hurst(image: np.ndarray, mask: np.ndarray, lags=(1, 2, 3, 4, 6, 8)) -> float:
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
