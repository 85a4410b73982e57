"""Synthetic AIA pixels from known DEMs: Gaussian components in log T, AIA noise added.

Two families. :func:`hot_dems` extends DeepEM's training set to flare temperatures (the
synoptic set has almost no plasma above log T 6.8) and tests a network against known truth.
:func:`synthetic_aia` gives the held-out pixels DeepEM's error model is calibrated on
(:mod:`fastinv.train.deepem_errors`) and checked against (tests).

For :func:`hot_dems`: Each DEM is the sum of
a "background" active-region component and a "hot" flare component, both Gaussian in
log T and defined on a fine 0.01-dex grid (so the forward model is not the 0.1-dex grid
the networks and BP use). Intensities are K @ EM through an AIA response table; noise is
Gaussian with the AIA error model's sigma (:func:`fastinv.dem.aia_error`) at the counts
of the noiseless intensities.

Examples
--------
>>> from fastinv.dem.synthetic import hot_dems
>>> s = hot_dems(4, seed=0)
>>> s.y.shape, s.em_fine.shape[1]
((6, 4), 4)
>>> from fastinv.dem.synthetic import synthetic_aia
>>> synthetic_aia(100, seed=0)["em"].shape
(18, 100)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .basis_pursuit import DEEPEM_LOGT, aia_error
from .response import load_response

#: The fine log T grid the synthetic DEMs live on (0.01 dex, 5.0 ... 8.0).
FINE_LOGT = np.round(5.0 + 0.01 * np.arange(301), 10)
#: Exposure times (s) of the 2011-02-15 flare cutouts' channels (94 ... 335), AIA's usual
#: ones: the noise of both families of synthetic pixels.
FLARE_EXPTIME = np.array([2.9, 2.9, 2.0, 2.0, 2.9, 2.9])


@dataclass
class SyntheticPixels:
    """Synthetic pixels: the true DEMs and their AIA intensities.

    Attributes
    ----------
    em_fine : ndarray (len(FINE_LOGT), n)
        True EM per 0.01-dex bin, cm^-5.
    y : ndarray (6, n)
        Noisy intensities, DN s^-1 pixel^-1 (may be negative, as dark-subtracted data).
    y_true : ndarray (6, n)
        Noiseless intensities K @ EM.
    sigma : ndarray (6, n)
        The AIA error model's 1-sigma (DN s^-1) at the noiseless counts.
    exptime : ndarray (6,)
    n_sample : float
    """

    em_fine: np.ndarray
    y: np.ndarray
    y_true: np.ndarray
    sigma: np.ndarray
    exptime: np.ndarray
    n_sample: float

    def em_on(self, logt: Sequence[float]) -> np.ndarray:
        """The true EM summed into 0.1-dex bins centred on ``logt`` (cm^-5 per bin)."""
        return rebin(self.em_fine, logt)

    @property
    def total_em(self) -> np.ndarray:
        """Total EM of each pixel (cm^-5)."""
        return self.em_fine.sum(axis=0)

    @property
    def logt_em(self) -> np.ndarray:
        """EM-weighted mean log T of each pixel's true DEM."""
        return FINE_LOGT @ self.em_fine / self.total_em


def rebin(em_fine: np.ndarray, logt: Sequence[float], width: float = 0.1) -> np.ndarray:
    """Sum fine-grid EM into bins ``[c - width/2, c + width/2)`` centred on ``logt``.

    Fine bins outside every coarse bin are dropped (the coarse grid cannot hold them).
    """
    grid = np.asarray(logt, dtype=np.float64)
    # half-open bins; the 1e-9 keeps a fine centre that sits on an edge in the upper bin
    idx = np.floor((FINE_LOGT - (grid[0] - width / 2)) / width + 1e-9).astype(int)
    out = np.zeros((grid.size, em_fine.shape[1]))
    for j in range(grid.size):
        sel = idx == j
        if sel.any():
            out[j] = em_fine[sel].sum(axis=0)
    return out


def gaussian_dems(
    n: int,
    rng: np.random.Generator,
    centre: tuple[float, float],
    width: tuple[float, float],
    log_total: tuple[float, float],
) -> np.ndarray:
    """``n`` Gaussian DEM components on :data:`FINE_LOGT`, parameters drawn uniformly.

    ``centre`` (log T), ``width`` (standard deviation, dex) and ``log_total``
    (log10 total EM, cm^-5) are (low, high) ranges.
    """
    c = rng.uniform(*centre, n)
    w = rng.uniform(*width, n)
    tot = 10.0 ** rng.uniform(*log_total, n)
    shape = np.exp(-0.5 * ((FINE_LOGT[:, None] - c[None, :]) / w[None, :]) ** 2)
    return shape * (tot / shape.sum(axis=0))[None, :]


def hot_dems(
    n: int,
    seed: int = 0,
    hot_centre: tuple[float, float] = (6.8, 7.5),
    hot_width: tuple[float, float] = (0.05, 0.2),
    hot_log_total: tuple[float, float] = (27.0, 30.0),
    background: bool = True,
    exptime: Optional[np.ndarray] = None,
    n_sample: float = 1.0,
    response: Optional[str] = None,
) -> SyntheticPixels:
    """Pixels with a hot (flare) component, optionally on an active-region background.

    Parameters
    ----------
    n : int
        Number of pixels.
    seed : int
        Seeds every draw (same seed, same pixels).
    hot_centre, hot_width, hot_log_total : (low, high)
        Ranges of the hot Gaussian's centre (log T), standard deviation (dex) and log10
        total EM (cm^-5), drawn uniformly.
    background : bool
        Add a background component: centre 5.9-6.5, width 0.1-0.3 dex, total EM 1e27-1e29.
    exptime : ndarray (6,), optional
        Exposure times for the noise (default :data:`FLARE_EXPTIME`).
    n_sample : float
        Pixels averaged per value, for the error model.
    response : str, optional
        Response table (default fastinv's default, ``aia_v10_eve``).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    t = np.asarray(FLARE_EXPTIME if exptime is None else exptime, dtype=np.float64).reshape(6)
    em = gaussian_dems(n, rng, hot_centre, hot_width, hot_log_total)
    if background:
        em += gaussian_dems(n, rng, (5.9, 6.5), (0.1, 0.3), (27.0, 29.0))
    k = load_response(response).at(FINE_LOGT)
    y_true = k @ em
    sigma = aia_error(y_true * t[:, None], n_sample) / t[:, None]
    y = y_true + sigma * rng.standard_normal(y_true.shape)
    return SyntheticPixels(em_fine=em, y=y, y_true=y_true, sigma=sigma, exptime=t, n_sample=float(n_sample))


def synthetic_aia(
    n: int,
    seed: int,
    logt: Optional[Sequence[float]] = None,
    response: str = "aia_v10_eve",
    n_sample: float = 1.0,
) -> dict:
    """Gaussian DEMs in log T (one component, or two for half of the pixels), their AIA data
    and the data with AIA noise.

    Centres are uniform in log T 5.8-6.8, widths (standard deviations) 0.05-0.3 dex, total EM
    10^26.5-10^28.5 cm^-5 (a second component holds 10-50 % of it); the data are K @ EM with
    Gaussian noise of the AIA error model (SSW ``aia_bp_estimate_error``) at :data:`FLARE_EXPTIME`.

    Parameters
    ----------
    n : int
        Pixels.
    seed : int
        Seed of numpy's default generator: the same seed gives the same pixels.
    logt : sequence of float, optional
        Bin centres of the EM (default: DeepEM's 18 bins, 5.5-7.2).
    response : str
        Response table for the data.
    n_sample : float
        Summed pixels, for the error model.

    Returns
    -------
    dict
        ``em`` (nT, n) cm^-5 per bin, ``y_true`` and ``y`` (6, n) DN/s, ``sigma`` (6, n) DN/s,
        ``exptime`` (6,) s, ``logt`` (nT,), ``logt_em`` and ``total_em`` (n,): the truth.

    Examples
    --------
    >>> s = synthetic_aia(10, seed=1)
    >>> bool((s["total_em"] > 1e26).all())
    True
    """
    lt = np.asarray(DEEPEM_LOGT if logt is None else logt, dtype=np.float64)
    rng = np.random.default_rng(seed)
    two = rng.random(n) < 0.5
    first = np.where(two, rng.uniform(0.5, 0.9, n), 1.0)  # share of the first component
    shape = np.zeros((lt.size, n))
    for share in (first, 1.0 - first):
        c, w = rng.uniform(5.8, 6.8, n), rng.uniform(0.05, 0.3, n)
        g = np.exp(-0.5 * ((lt[:, None] - c) / w) ** 2)
        shape += g / g.sum(axis=0) * share
    em = shape * 10 ** rng.uniform(26.5, 28.5, n)
    kernel = load_response(response).at(lt)
    y_true = kernel @ em
    t = FLARE_EXPTIME[:, None]
    sigma = aia_error(y_true * t, n_sample) / t
    y = y_true + sigma * rng.standard_normal(y_true.shape)
    total = em.sum(axis=0)
    return {
        "em": em,
        "y_true": y_true,
        "y": y,
        "sigma": sigma,
        "exptime": FLARE_EXPTIME.copy(),
        "logt": lt,
        "logt_em": (lt[:, None] * em).sum(axis=0) / total,
        "total_em": total,
    }
