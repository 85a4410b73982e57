"""Synthetic DEMs with known truth and AIA noise: the held-out data DeepEM's error model is
calibrated on (:mod:`fastinv.train.deepem_errors`) and checked against (tests).

Examples
--------
>>> from fastinv.dem.synthetic import synthetic_aia
>>> s = synthetic_aia(100, seed=0)
>>> s["em"].shape, s["y"].shape
((18, 100), (6, 100))
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .basis_pursuit import DEEPEM_LOGT, aia_error
from .response import load_response

#: Exposure times (s) of the synthetic observations, channels 94..335 (AIA's usual ones).
EXPTIME = np.array([2.9, 2.9, 2.0, 2.0, 2.9, 2.9])


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
    Gaussian noise of the AIA error model (SSW ``aia_bp_estimate_error``) at :data:`EXPTIME`.

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
    t = EXPTIME[:, None]
    sigma = aia_error(y_true * t, n_sample) / t
    y = y_true + sigma * rng.standard_normal(y_true.shape)
    total = em.sum(axis=0)
    return {
        "em": em,
        "y_true": y_true,
        "y": y,
        "sigma": sigma,
        "exptime": EXPTIME.copy(),
        "logt": lt,
        "logt_em": (lt[:, None] * em).sum(axis=0) / total,
        "total_em": total,
    }
