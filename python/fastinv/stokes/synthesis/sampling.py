"""Random Milne-Eddington parameter sets for training data (reproducible by seed).

Default ranges (``ME_RANGES``; pass ``ranges=`` to override any of them):

===================  ======================  ===========================================
parameter            distribution            range
===================  ======================  ===========================================
``B``                uniform                 0 - 4000 G
``inclination``      isotropic (uniform      0 - 180 deg
                     in cos gamma)
``azimuth``          uniform                 0 - 180 deg (Zeeman signals are
                                             180-degree ambiguous)
``vlos``             uniform                 -5 - +5 km/s
``doppler_width``    uniform                 20 - 60 mA
``damping``          uniform                 0 - 0.8
``eta0``             log-uniform             1 - 60
``S0``               uniform                 0 - 0.5; ``S1 = 1 - S0`` so that the
                                             disc-centre continuum S0 + S1 is 1
``filling_factor``   uniform                 0.2 - 1
``vmac``             uniform                 0 - 2 km/s
===================  ======================  ===========================================
"""

from __future__ import annotations

import numpy as np

__all__ = ["ME_RANGES", "sample_me_parameters"]

#: name -> (low, high, distribution); distribution is "uniform", "log" or "cos".
ME_RANGES: dict[str, tuple[float, float, str]] = {
    "B": (0.0, 4000.0, "uniform"),
    "inclination": (0.0, 180.0, "cos"),
    "azimuth": (0.0, 180.0, "uniform"),
    "vlos": (-5.0, 5.0, "uniform"),
    "doppler_width": (20.0, 60.0, "uniform"),
    "damping": (0.0, 0.8, "uniform"),
    "eta0": (1.0, 60.0, "log"),
    "S0": (0.0, 0.5, "uniform"),
    "filling_factor": (0.2, 1.0, "uniform"),
    "vmac": (0.0, 2.0, "uniform"),
}


def sample_me_parameters(n: int, seed=None, ranges: dict | None = None) -> dict[str, np.ndarray]:
    """Draw ``n`` random ME parameter sets.

    Parameters
    ----------
    n : int
    seed : int or numpy.random.Generator, optional
    ranges : dict, optional
        ``name -> (low, high, distribution)`` replacing entries of :data:`ME_RANGES`;
        ``(v, v, "uniform")`` fixes a parameter.

    Returns
    -------
    dict of name -> float64 array of length n (``S1`` = 1 - ``S0``).

    Examples
    --------
    >>> from fastinv.stokes.synthesis.sampling import sample_me_parameters
    >>> p = sample_me_parameters(3, seed=0)
    >>> sorted(p)[:3], p["B"].shape
    (['B', 'S0', 'S1'], (3,))
    """
    if int(n) < 0:
        raise ValueError("n must be >= 0")
    table = dict(ME_RANGES)
    for k, v in (ranges or {}).items():
        if k not in ME_RANGES:
            raise ValueError(f"unknown ME parameter {k!r}; known: {list(ME_RANGES)}")
        lo, hi, kind = v
        if kind not in ("uniform", "log", "cos") or not lo <= hi:
            raise ValueError(f"bad range for {k!r}: {v!r} (need low <= high and distribution uniform|log|cos)")
        table[k] = (float(lo), float(hi), kind)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, (lo, hi, kind) in table.items():  # fixed order -> reproducible
        u = rng.uniform(0.0, 1.0, int(n))
        if kind == "uniform":
            out[name] = lo + (hi - lo) * u
        elif kind == "log":
            if lo <= 0:
                raise ValueError(f"log-uniform range for {name!r} needs low > 0")
            out[name] = np.exp(np.log(lo) + (np.log(hi) - np.log(lo)) * u)
        else:  # isotropic in angle: uniform in cos between cos(lo) and cos(hi)
            c_lo, c_hi = np.cos(np.deg2rad(lo)), np.cos(np.deg2rad(hi))
            out[name] = np.rad2deg(np.arccos(c_lo + (c_hi - c_lo) * u))
    out["S1"] = 1.0 - out["S0"]
    return out
