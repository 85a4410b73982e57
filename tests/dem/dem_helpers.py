"""Helpers of the DEM tests: synthetic AIA pixels and the reference LP solver (SciPy HiGHS).

(A uniquely named module rather than conftest.py, so that ``from dem_helpers import ...``
cannot pick up another test directory's conftest.)"""

from __future__ import annotations

import numpy as np
from fastinv.dem import BasisPursuit

EXPTIME = np.array([2.9, 2.9, 2.0, 2.0, 2.9, 2.9])  # s, as the 2011 AIA cutouts (94..335)


def synthetic_pixels(bp: BasisPursuit, n: int, seed: int, noise: bool = True):
    """Half Gaussian-in-T, half log-normal (Gaussian in log T) DEMs through the responses.

    log T_c in 5.8..6.8, width 0.05..0.5 dex (standard deviation), total EM 10^26.5..10^28.5
    cm^-5, Poisson noise on the counts in DN at 2.0/2.9 s exposures. Returns y (6, n) DN/s and
    the true EM (nT, n).
    """
    rng = np.random.default_rng(seed)
    lt = bp.logt[:, None]
    tc = rng.uniform(5.8, 6.8, n)
    w = rng.uniform(0.05, 0.5, n)
    em0 = 10 ** rng.uniform(26.5, 28.5, n)
    lognormal = np.exp(-0.5 * ((lt - tc) / w) ** 2)
    # Gaussian in T with the same centre and an equivalent width, per log T bin (dT = T ln10 dlogT)
    t, t0 = 10.0**lt, 10.0**tc
    sig_t = t0 * np.log(10) * w
    gauss_t = np.exp(-0.5 * ((t - t0) / sig_t) ** 2) * t
    dem = np.where(np.arange(n) % 2 == 0, lognormal, gauss_t)
    dem = dem / dem.sum(axis=0) * em0
    y = bp.response_on_grid @ dem
    if noise:
        y = rng.poisson(y * EXPTIME[:, None]) / EXPTIME[:, None]
    return y, dem


def highs(D: np.ndarray, y: np.ndarray, eta: np.ndarray):
    """The same LP by scipy.optimize.linprog(method="highs"): (status, objective, x)."""
    from scipy.optimize import linprog

    yc = np.maximum(y, 0.0)
    res = linprog(
        np.ones(D.shape[1]),
        A_ub=np.vstack([D, -D]),
        b_ub=np.concatenate([yc + eta, -np.maximum(yc - eta, 0.0)]),
        bounds=(0, None),
        method="highs",
        options={"primal_feasibility_tolerance": 1e-10, "dual_feasibility_tolerance": 1e-10},
    )
    return res.status, res.fun, res.x
