"""Quiet-Sun continuum normalisation of observed Stokes profiles.

The networks are trained on I, Q, U, V divided by the continuum intensity I_c of the
quiet Sun (the HSRA model's, see :mod:`fastinv.stokes.synthesis.training_sets`). Observations in counts are
brought to that scale with one number per map (or per frame in low-latency mode), found by
this documented rule:

1. **Continuum wavelengths** are the brightest 15 % (at least 3) of the wavelengths of the
   mean Stokes I spectrum over the finite pixels (up to 512 evenly spaced ones): in the
   Fe I 630 nm windows of Hinode SP and ViSP these are line-free points, whatever the grid,
   without a line list.
2. Each pixel's **continuum level** is its mean Stokes I over those wavelengths.
3. **Quiet-Sun I_c** is the median continuum level of the quiet-Sun pixels, found by
   iterative clipping: start from the median of all pixels, keep pixels brighter than
   0.8 x the current estimate (dropping umbrae, penumbrae and pores, which are darker than
   ~0.8 I_c, while granulation, ~±10 % rms, is kept whole), take their median, repeat until
   it changes by < 1e-4 (at most 20 times).

Pixels with non-finite values or a continuum level <= 0 are left out (and flagged by the
inversion).

Examples
--------
>>> import numpy as np
>>> from fastinv.stokes.inversion.continuum import quiet_sun_level
>>> rng = np.random.default_rng(0)
>>> levels = np.concatenate([rng.normal(1000, 50, 600), rng.normal(300, 30, 400)])  # 40 % umbra
>>> round(quiet_sun_level(levels) / 1000, 2)
1.0
"""

from __future__ import annotations

import numpy as np

__all__ = ["continuum_wavelengths", "continuum_levels", "quiet_sun_level", "CLIP", "FRACTION"]

#: Fraction of the (brightest) wavelengths of the mean spectrum taken as continuum.
FRACTION = 0.15
#: Pixels darker than CLIP x the quiet-Sun estimate are not quiet Sun.
CLIP = 0.8


def continuum_wavelengths(
    intensity: np.ndarray, axis: int = -1, fraction: float = FRACTION, max_pixels: int = 512
) -> np.ndarray:
    """Indices of the continuum wavelengths of Stokes I spectra (rule step 1).

    Parameters
    ----------
    intensity : numpy.ndarray
        Stokes I, the wavelength along ``axis``; any other axes are pixels.
    fraction : float
        Share of the brightest wavelengths of the mean spectrum to use.
    max_pixels : int
        Average at most this many evenly spaced pixels (the choice of wavelengths does not
        need more; it keeps frame-by-frame use cheap).

    Returns
    -------
    numpy.ndarray of int
        Sorted wavelength indices.
    """
    i = np.moveaxis(np.asarray(intensity), axis, -1)
    flat = i.reshape(-1, i.shape[-1])
    if flat.shape[0] > max_pixels:
        flat = flat[np.linspace(0, flat.shape[0] - 1, max_pixels).astype(np.intp)]
    ok = np.isfinite(flat).all(axis=1)
    if not ok.any():
        raise ValueError("no pixel has a finite Stokes I spectrum: cannot find the continuum")
    mean = flat[ok].mean(axis=0, dtype=np.float64)
    k = max(3, int(round(fraction * mean.size)))
    k = min(k, mean.size)
    return np.sort(np.argsort(mean)[::-1][:k])


def continuum_levels(intensity: np.ndarray, indices: np.ndarray, axis: int = -1) -> np.ndarray:
    """Each pixel's mean Stokes I at the continuum wavelengths ``indices`` (rule step 2)."""
    return np.take(np.asarray(intensity), indices, axis=axis).mean(axis=axis, dtype=np.float64)


def quiet_sun_level(levels: np.ndarray, clip: float = CLIP) -> float:
    """The quiet-Sun continuum of a set of pixel continuum levels (rule step 3).

    Raises
    ------
    ValueError
        No pixel with a finite positive continuum.
    """
    v = np.asarray(levels, dtype=np.float64).ravel()
    v = v[np.isfinite(v) & (v > 0)]
    if v.size == 0:
        raise ValueError(
            "no pixel with a finite, positive continuum: cannot normalise "
            "(all NaN, or the data are not Stokes I counts)"
        )
    est = float(np.median(v))
    for _ in range(20):
        keep = v[v > clip * est]
        new = float(np.median(keep))
        if abs(new - est) <= 1e-4 * est:
            return new
        est = new
    return est
