"""What a Milne-Eddington fit means for a stratified atmosphere: ME vs LTE truth with depth.

An ME inversion returns one B, inclination, azimuth and v_LOS per pixel, while the Sun's
atmosphere (and fastinv's LTE training atmospheres) vary with depth. Which optical depth do
the ME values stand for? :func:`compare_with_atmospheres` inverts LTE profiles whose
atmospheres are known and reports, at each log tau_500 node, how far the ME values are from
the atmosphere there (median absolute difference, Pearson r); the node with the smallest
difference is where the ME parameters "sit" for this line pair. This is a documented
comparison (docs/stokes-me-inversion.md), not a pass/fail bar: ME is an approximation there.

Examples
--------
>>> from fastinv.stokes.inversion.me_vs_lte import compare_with_lte
>>> table = compare_with_lte(n=50, seed=1)                       # doctest: +SKIP
>>> table["B"]["best_log_tau"]                                   # doctest: +SKIP
-1.5
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["compare_with_atmospheres", "compare_with_lte", "COMPARED"]

#: ME parameters compared with the atmosphere (the depth-resolved quantities both share).
COMPARED = ("B", "inclination", "azimuth", "vlos")


def _difference(q: str, me: np.ndarray, truth: np.ndarray) -> np.ndarray:
    d = me - truth
    if q == "azimuth":  # defined modulo 180 deg
        d = (d + 90.0) % 180.0 - 90.0
    return d


def compare_with_atmospheres(result, truth: Mapping[str, np.ndarray], log_tau) -> dict:
    """ME results against known atmospheres at each log tau.

    Parameters
    ----------
    result : MEResult
        :meth:`MEInversion.invert` of N profiles.
    truth : mapping
        quantity -> (N, n_nodes) values of the atmospheres at ``log_tau`` (units of
        :data:`fastinv.stokes.ME_UNITS`: G, deg, km/s).
    log_tau : array_like (n_nodes,)

    Returns
    -------
    dict
        quantity -> {"log_tau", "median_abs_diff" (per node), "pearson_r" (per node),
        "best_log_tau", "best_median_abs_diff"}, plus "pixels" (those with ME status ok).

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> from fastinv.stokes.inversion.me_vs_lte import compare_with_atmospheres
    >>> values = {q: np.array([1.0, 2.0, 3.0]) for q in ("B", "inclination", "azimuth", "vlos")}
    >>> res = SimpleNamespace(status=np.zeros(3, int), parameters=values)
    >>> truth = {q: np.array([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0]]) for q in values}
    >>> compare_with_atmospheres(res, truth, [0.0, -1.0])["B"]["best_log_tau"]
    0.0
    """
    log_tau = np.asarray(log_tau, dtype=np.float64).ravel()
    ok = np.asarray(result.status) == 0
    out: dict = {"pixels": int(ok.sum())}
    for q in COMPARED:
        me = np.asarray(getattr(result.parameters[q], "value", result.parameters[q]), dtype=np.float64)[ok]
        tr = np.asarray(truth[q], dtype=np.float64)[ok]
        if tr.shape != (me.size, log_tau.size):
            raise ValueError(f"truth[{q!r}] must have shape (N, {log_tau.size}), got {np.shape(truth[q])}")
        mad, r = [], []
        for k in range(log_tau.size):
            d = _difference(q, me, tr[:, k])
            mad.append(float(np.median(np.abs(d))))
            spread = np.std(me) * np.std(tr[:, k])
            r.append(float(np.mean((me - me.mean()) * (tr[:, k] - tr[:, k].mean())) / spread) if spread > 0 else np.nan)
        best = int(np.argmin(mad))
        out[q] = {
            "log_tau": log_tau.tolist(),
            "median_abs_diff": mad,
            "pearson_r": r,
            "best_log_tau": float(log_tau[best]),
            "best_median_abs_diff": mad[best],
        }
    return out


def compare_with_lte(
    n: int = 400,
    seed: int = 3,
    instrument: str = "hinode",
    noise: float = 1e-3,
    lightweaver: bool = False,
    threads: int | None = None,
) -> dict:
    """Invert LTE profiles of random training-like atmospheres with ME; compare per depth.

    Parameters
    ----------
    n : int
        Profiles (atmospheres :func:`~fastinv.stokes.synthesis.atmospheres.random_mixture`).
    seed : int
    instrument : {"hinode", "visp"}
    noise : float
        Noise in units of I_c (fastinv's LTE set); lightweaver's set has the instrument's.
    lightweaver : bool
        Synthesise with lightweaver (an independent code; slow, ~0.3 s per profile)
        instead of fastinv's LTE.
    threads : int, optional

    Returns
    -------
    dict
        :func:`compare_with_atmospheres`'s table plus "median_chi2" and "set".
    """
    from ..synthesis.training_sets import instrument_by_name, lte_training_set
    from .evaluate import lightweaver_set, truth_at_nodes
    from .me import MEInversion

    inst = instrument_by_name(instrument)
    if lightweaver:
        d = lightweaver_set(n, instrument, seed)
        nodes = (0.0, -0.5, -1.0, -1.5, -2.0, -2.5, -3.0)
        truth = truth_at_nodes(d["atmosphere"], d["log_tau"], nodes)
        stokes = d["stokes"].astype(np.float64)
        keep = np.ones(n, dtype=bool)
        kind = "lightweaver (independent code)"
    else:
        d = lte_training_set(n, instrument=inst, seed=seed, noise=noise)
        keep = d["status"] == 0
        nodes = tuple(d["nodes"]["log_tau"])
        truth = {q: d["nodes"][q][keep] for q in COMPARED}
        stokes = d["stokes"][keep].astype(np.float64)
        kind = "fastinv LTE"
    res = MEInversion(instrument=inst).invert(stokes, sigma=inst.noise if lightweaver else noise, threads=threads)
    table = compare_with_atmospheres(res, truth, nodes)
    ok = res.status == 0
    table["median_chi2"] = float(np.median(res.chi2[ok, 4])) if ok.any() else float("nan")
    table["set"] = {"kind": kind, "instrument": instrument, "profiles": int(keep.sum()), "seed": seed}
    return table
