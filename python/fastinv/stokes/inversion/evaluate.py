"""Accuracy of a Stokes inversion network: Pearson r, RMSE and bias per quantity and node.

Two test sets, both never seen in training:

- the held-out rows of a fastinv training set (the last 5 %, ``SPLIT`` in
  :mod:`fastinv.stokes.synthesis.training_sets`);
- :func:`lightweaver_set`: a few hundred random atmospheres synthesised by lightweaver (an
  independent code, strictly LTE; :mod:`fastinv.stokes.synthesis.lightweaver_reference`) and degraded
  through the same instrument with the same noise. Each code's profiles are normalised to its
  own HSRA quiet-Sun continuum, as fastinv's training profiles are.

The network runs through fastinv's engine (:class:`fastinv.stokes.StokesNet`), so the
metrics are those of the shipped file. Definitions: r is Pearson's correlation of predicted
and true values over the test profiles; RMSE and bias (predicted - true) in the quantity's
unit. The azimuth uses the 180-degree-ambiguous difference wrapped to [-90, 90) deg, r is the
mean of the correlations of cos 2 phi and sin 2 phi, and only nodes where the true transverse
field B sin(gamma) is >= 300 G count (below, the linear polarisation is under the noise and
the azimuth undefined).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from ..._optional import require
from ..._progress import progress_bar
from ..synthesis.training_sets import SPLIT, read_set, targets
from .output import AZIMUTH_MIN_TRANSVERSE

__all__ = ["metrics", "evaluate", "lightweaver_set", "evaluate_lightweaver", "truth_at_nodes"]


def truth_at_nodes(atmosphere: Mapping, log_tau: np.ndarray, nodes) -> dict[str, np.ndarray]:
    """True quantities (N, n_nodes) at the nodes, incl. ``azimuth`` and ``B_los``."""

    names = ("temperature", "vlos", "B", "inclination", "azimuth", "B_los")
    cols = targets(atmosphere, log_tau, nodes, names)
    n = len(nodes)
    return {q: cols[:, i * n : (i + 1) * n].astype(np.float64) for i, q in enumerate(names)}


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def metrics(pred: Mapping[str, np.ndarray], truth: Mapping[str, np.ndarray], nodes) -> dict:
    """Per quantity in ``pred``: lists over nodes of r, RMSE, bias (see module docstring)."""
    out = {}
    transverse = truth["B"] * np.sin(np.deg2rad(truth["inclination"]))
    for q, p in pred.items():
        t = truth[q]
        r, rmse, bias, count = [], [], [], []
        for k in range(len(nodes)):
            pk, tk = np.asarray(p[:, k], np.float64), t[:, k]
            if q == "azimuth":
                m = transverse[:, k] >= AZIMUTH_MIN_TRANSVERSE
                pk, tk = pk[m], tk[m]
                d = (pk - tk + 90.0) % 180.0 - 90.0
                rad_p, rad_t = np.deg2rad(2 * pk), np.deg2rad(2 * tk)
                r.append(
                    0.5 * (_pearson(np.cos(rad_p), np.cos(rad_t)) + _pearson(np.sin(rad_p), np.sin(rad_t)))
                    if m.sum() > 2
                    else float("nan")
                )
            else:
                d = pk - tk
                r.append(_pearson(pk, tk))
            rmse.append(float(np.sqrt(np.mean(d * d))) if d.size else float("nan"))
            bias.append(float(np.mean(d)) if d.size else float("nan"))
            count.append(int(d.size))
        out[q] = {"r": r, "rmse": rmse, "bias": bias, "n": count}
    summary = {}
    if "temperature" in out:
        sel = [k for k, v in enumerate(nodes) if -2.0 <= v <= 0.0]
        summary["temperature_r_mean_logtau_0_to_-2"] = float(np.mean([out["temperature"]["r"][k] for k in sel]))
    for q in out:
        summary[f"{q}_r_mean"] = float(np.nanmean(out[q]["r"]))
    return {"nodes": list(nodes), "per_node": out, "summary": summary}


def _predict(model, stokes: np.ndarray, wavelength: np.ndarray, threads: int | None):
    from .network import StokesNet

    net = model if isinstance(model, StokesNet) else StokesNet.load(model, threads=threads)
    grid = net.wavelength.to_value("Angstrom")
    if wavelength.size != grid.size or not np.allclose(wavelength, grid, atol=1e-6):
        from .network import resample_to

        stokes = resample_to(stokes, wavelength, grid)
    pred = net.predict(stokes)
    return net, {q: np.asarray(getattr(v, "value", v), dtype=np.float64) for q, v in pred.items()}


def evaluate(model, data: str | os.PathLike, threads: int | None = None, max_profiles: int | None = 50_000) -> dict:
    """Metrics on the held-out rows (last 5 %) of a training set.

    Parameters
    ----------
    model : path or StokesNet
    data : path
        The HDF5 training set the model was trained from (or any set of the same instrument:
        then its last 5 % are used all the same).
    max_profiles : int, optional
        Cap on the held-out profiles used (the default 50 000 gives r to ~1e-3).
    """
    with require("h5py", "reading HDF5 training sets").File(data, "r") as f:
        n_all = f["status"].shape[0]
    start = int(SPLIT[1] * n_all)
    stop = n_all if not max_profiles else min(n_all, start + int(max_profiles))
    d = read_set(data, slice(start, stop))
    ok = d["status"] == 0
    net, pred = _predict(model, d["stokes"][ok], d["wavelength"], threads)
    truth = truth_at_nodes({k: v[ok] for k, v in d["atmosphere"].items()}, d["log_tau"], net.nodes)
    result = metrics(pred, truth, net.nodes)
    result["set"] = {"kind": "held-out synthetic (fastinv LTE)", "rows": [start, stop], "profiles": int(ok.sum())}
    return result


def lightweaver_set(
    n: int = 300,
    instrument: str = "hinode",
    seed: int = 20261121,
    wavelength: np.ndarray | None = None,
    progress: bool = False,
) -> dict:
    """Stokes profiles of ``n`` random atmospheres (:func:`~fastinv.stokes.synthesis.atmospheres.random_mixture`)
    computed by lightweaver, degraded through the instrument, with its noise.

    ``wavelength`` (default: the instrument's grid) restricts the output grid, e.g. to a
    model's crop of ViSP, which saves synthesis.
    """
    from ... import _core
    from ..synthesis import atmospheres as atm_mod
    from ..synthesis import lightweaver_reference as lwref
    from ..synthesis.instrument import Instrument
    from ..synthesis.training_sets import instrument_by_name

    inst = instrument_by_name(instrument)
    if wavelength is not None:
        inst = Instrument(np.asarray(wavelength, np.float64), inst.lsf_fwhm, noise=inst.noise, name=inst.name)
    grid = inst.synthesis_grid()
    rng = np.random.default_rng(seed)
    atm, population = atm_mod.random_mixture(n, seed=rng)
    reference = atm_mod.hsra()

    def synth(a, i, wave):
        ptop = float(_core._testing.lte_hydrostatic(a.log_tau, a.temperature[i])["Pg"][0])
        return lwref.lightweaver_stokes(
            a.log_tau,
            a.temperature[i],
            a.vmic[i],
            a.B[i],
            a.inclination[i],
            a.azimuth[i],
            a.vlos[i],
            wave,
            ptop_dyn=ptop,
        )

    # HSRA continuum: lightweaver at line-free points 3 A outside the grid, linear between
    ends = np.array([grid[0] - 3.0, grid[-1] + 3.0])
    ic = np.interp(grid, ends, synth(reference, 0, ends)[0])
    raw = np.empty((n, 4, grid.size))
    bar = progress_bar(n, desc="lightweaver", unit="atmosphere", enabled=progress)
    for i in range(n):
        raw[i] = synth(atm, i, grid)
        bar.update(1)
    stokes = inst.add_noise(inst.degrade(raw / ic[None, None, :]), seed=rng, continuum=1.0)
    return {
        "stokes": stokes.astype(np.float32),
        "wavelength": inst.wavelength.copy(),
        "log_tau": atm.log_tau,
        "population": population,
        "atmosphere": {k: getattr(atm, k) for k in ("temperature", "vmic", "B", "inclination", "azimuth", "vlos")},
    }


def evaluate_lightweaver(
    model, n: int = 300, seed: int = 20261121, threads: int | None = None, progress: bool = False
) -> dict:
    """Metrics of ``model`` on :func:`lightweaver_set` profiles of its instrument."""
    from .network import StokesNet

    net = model if isinstance(model, StokesNet) else StokesNet.load(model, threads=threads)
    instrument = "visp" if net.card["instrument"] == "visp" else "hinode"
    d = lightweaver_set(n, instrument, seed, wavelength=net.wavelength.to_value("Angstrom"), progress=progress)
    _, pred = _predict(net, d["stokes"], d["wavelength"], threads)
    truth = truth_at_nodes(d["atmosphere"], d["log_tau"], net.nodes)
    result = metrics(pred, truth, net.nodes)
    result["set"] = {"kind": "lightweaver (independent code), random_mixture atmospheres", "profiles": n, "seed": seed}
    return result
