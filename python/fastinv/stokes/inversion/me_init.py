"""Classical initial guesses for the Milne-Eddington inversion, from the profiles alone.

Per pixel (vectorised over pixels), on the first line's window (|lambda - lambda0| < 0.4 A):

- ``vlos``: centre of gravity of the line depression ``I_c - I``;
- ``B`` and ``inclination``: weak-field estimates, ``B_LOS`` by least squares of
  ``V = -C B_LOS dI/dlambda`` (C = 4.6686e-13 lambda0^2 g_eff, Landi Degl'Innocenti &
  Landolfi 2004 eq. 9.80) and ``B_T`` from the linear polarisation at line centre,
  ``L = C^2 g_eff^2 B_T^2 |d^2I/dlambda^2| / 4`` (G approximated by g_eff^2);
- ``azimuth``: ``atan2(-U, -Q) / 2`` of the line-core sums (Q ~ -cos 2 azimuth, the model's
  convention);
- thermodynamics: fixed typical values scaled to the pixel's continuum ``I_c`` (the maximum
  of Stokes I): ``S0 = 0.2 I_c``, ``S1 = 0.8 I_c / mu``, ``doppler_width`` 30 mA,
  ``damping`` 0.3, ``eta0`` 10, ``filling_factor`` 1.
"""

from __future__ import annotations

import numpy as np

from ..synthesis.lines import SpectralLine

__all__ = ["classical_guess"]

_C_LIGHT = 299792.458  # km/s
_LARMOR = 4.6686448e-13  # dlambda_B / (g lambda0^2 B) [1 / (A G)]


def classical_guess(stokes: np.ndarray, wavelength: np.ndarray, line: SpectralLine, mu: float) -> np.ndarray:
    """Initial ME parameters from the profiles.

    Parameters
    ----------
    stokes : numpy.ndarray, shape (n, 4, m)
        I, Q, U, V.
    wavelength : numpy.ndarray, shape (m,)
        Air Angstrom, increasing.
    line : SpectralLine
        The line whose window is used (the first of the inversion).
    mu : float
        cos(theta), for S1.

    Returns
    -------
    numpy.ndarray, shape (n, 10)
        B, inclination, azimuth, vlos, doppler_width, damping, eta0, S0, S1, filling_factor
        in the inversion's units (G, deg, deg, km/s, mA, ...). Non-finite profiles give
        non-finite guesses (the inversion flags them as bad input).
    """
    stokes = np.asarray(stokes, dtype=np.float64)
    wl = np.asarray(wavelength, dtype=np.float64)
    sel = np.abs(wl - line.wavelength) < 0.4
    if sel.sum() < 5:
        sel = np.ones_like(wl, dtype=bool)
    I, Q, U, V = (stokes[:, k] for k in range(4))
    ic = I.max(axis=1)
    w = wl[sel]
    depth = np.clip(ic[:, None] - I[:, sel], 0.0, None)
    with np.errstate(invalid="ignore", divide="ignore"):
        cog = (depth * w).sum(axis=1) / depth.sum(axis=1)
        vlos = np.where(np.isfinite(cog), (cog - line.wavelength) / line.wavelength * _C_LIGHT, 0.0)
        geff = line.g_eff
        c = _LARMOR * line.wavelength**2 * geff
        dI = np.gradient(I, wl, axis=1)[:, sel]
        d2I = np.gradient(np.gradient(I, wl, axis=1), wl, axis=1)[:, sel]
        b_los = -(V[:, sel] * dI).sum(axis=1) / (c * (dI * dI).sum(axis=1))
        # line core: the 5 points nearest the centre-of-gravity wavelength
        core = np.argsort(np.abs(w[None, :] - cog[:, None]), axis=1)[:, :5]
        q = np.take_along_axis(Q[:, sel], core, axis=1).sum(axis=1)
        u = np.take_along_axis(U[:, sel], core, axis=1).sum(axis=1)
        lin = np.hypot(Q[:, sel], U[:, sel])
        bt2 = 4.0 * (lin * np.abs(d2I)).sum(axis=1) / (c * c * (d2I * d2I).sum(axis=1))
    b_t = np.sqrt(np.clip(np.nan_to_num(bt2), 0.0, 3000.0**2))
    b_los = np.clip(np.nan_to_num(b_los), -3000.0, 3000.0)
    out = np.empty((stokes.shape[0], 10))
    out[:, 0] = np.maximum(np.hypot(b_los, b_t), 10.0)
    out[:, 1] = np.degrees(np.arctan2(b_t, b_los))
    out[:, 2] = np.degrees(0.5 * np.arctan2(-u, -q)) % 180.0
    out[:, 3] = np.clip(vlos, -10.0, 10.0)
    out[:, 4] = 30.0
    out[:, 5] = 0.3
    out[:, 6] = 10.0
    out[:, 7] = 0.2 * ic
    out[:, 8] = 0.8 * ic / mu
    out[:, 9] = 1.0
    bad = ~np.isfinite(stokes).all(axis=(1, 2))
    out[bad] = np.nan
    return out
