"""Stray-light profiles for the Milne-Eddington inversion.

The inversion can fit ``(1 - alpha) ME + alpha S`` with a given stray-light profile ``S``;
:func:`quiet_sun_profile` makes the usual choice of ``S`` from the frame itself: the mean
Stokes I of its least polarised pixels (Q, U, V set to zero), as Hinode's MERLIN and the
HMI pipeline use an average local or quiet-Sun profile.
"""

from __future__ import annotations

import numpy as np

__all__ = ["quiet_sun_profile"]


def quiet_sun_profile(stokes, max_polarization: float = 0.01, min_pixels: int = 10) -> np.ndarray:
    """Mean unpolarised profile of a frame's quiet-Sun pixels.

    The polarisation degree of a pixel is ``max over wavelength of sqrt(Q^2 + U^2 + V^2)``
    divided by its continuum (the maximum of its Stokes I). Pixels at or below
    ``max_polarization`` are averaged; if fewer than ``min_pixels`` qualify, the
    ``min_pixels`` least polarised pixels are used instead.

    Parameters
    ----------
    stokes : array_like, shape (..., 4, m)
        The frame (any leading axes). Pixels with non-finite values or no positive
        intensity are ignored.
    max_polarization : float
        Polarisation degree below which a pixel counts as quiet Sun.
    min_pixels : int
        Fewest pixels averaged.

    Returns
    -------
    numpy.ndarray, shape (4, m)
        Mean Stokes I of the selected pixels, and zero Q, U, V.

    Raises
    ------
    ValueError
        On a bad shape or parameters, or when fewer than ``min_pixels`` pixels are usable.

    Examples
    --------
    >>> import numpy as np
    >>> frame = np.zeros((3, 4, 5))
    >>> frame[:, 0] = [[1.0, 0.5, 1.0, 0.5, 1.0]]
    >>> frame[2, 3] = 0.2  # a strongly polarised pixel is left out
    >>> quiet_sun_profile(frame, min_pixels=2)[0]
    array([1. , 0.5, 1. , 0.5, 1. ])
    """
    data = np.asarray(stokes, dtype=np.float64)
    if data.ndim < 2 or data.shape[-2] != 4:
        raise ValueError(f"stokes must have shape (..., 4, m), got {data.shape}")
    if not (max_polarization >= 0.0 and np.isfinite(max_polarization)):
        raise ValueError(f"max_polarization must be finite and >= 0, got {max_polarization}")
    if int(min_pixels) < 1:
        raise ValueError(f"min_pixels must be >= 1, got {min_pixels}")
    flat = data.reshape(-1, 4, data.shape[-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        ic = flat[:, 0].max(axis=1)
        usable = np.isfinite(flat).all(axis=(1, 2)) & (ic > 0)
        pol = np.sqrt((flat[:, 1:] ** 2).sum(axis=1)).max(axis=1) / ic
    idx = np.flatnonzero(usable)
    if idx.size < int(min_pixels):
        raise ValueError(f"quiet_sun_profile: {idx.size} usable pixels, fewer than min_pixels={int(min_pixels)}")
    quiet = idx[pol[idx] <= max_polarization]
    if quiet.size < int(min_pixels):
        quiet = idx[np.argsort(pol[idx], kind="stable")[: int(min_pixels)]]
    out = np.zeros((4, data.shape[-1]))
    out[0] = flat[quiet, 0].mean(axis=0)
    return out
