"""How close DeepEM is to Basis Pursuit, on AIA data it never saw in training.

The original DeepEM paper published no agreement metric; these are fastinv's, computed
on the 2011-02-15 X2.2 flare series (10 time steps x 6 channels of 67x67 level-1
cutouts) against fastinv's BP. :func:`evaluate_deepem` compares one model with BP on the
model's own grid; :func:`evaluate_shipped` compares every shipped model with BP on BP's
default 21-bin grid (5.5..7.5, the widest, where the most flare pixels are feasible), bins
matched by log T (a model without a bin has EM 0 there):

* ``rel_err_per_bin``: per log T bin, median |EM_DeepEM - EM_BP| / EM_BP over BP-ok pixels
  where EM_BP exceeds 1 % of that pixel's peak bin;
* ``logt_em``: |difference| of the EM-weighted log T (median and 90th percentile, dex);
* ``total_em_ratio``: DeepEM / BP total EM (10th, 50th, 90th percentiles);
* ``within_tolerance``: fraction of BP-ok pixels whose re-synthesised intensities
  K @ EM_DeepEM lie within BP's tolerance band |K EM - y| <= 1.4 sigma in all six channels
  (BP's own solutions satisfy it by construction, up to the adaptive tolfac);
* ``bp_failed_recovered``: fraction of pixels where BP failed (status not ok, input finite
  and with counts) whose DeepEM re-synthesis lies within the loosest BP band, 3.15 sigma;
* ``coverage`` (only when the DeepEM result carries ``logt_err``/``total_em_err``):
  fraction of BP-ok pixels whose BP log T_EM (total EM) lies within DeepEM's +-1 sigma.

With ``refine=True`` the same metrics for ``DeepEM.invert(..., refine=True)`` (``refined``)
and how far the refinement moved the network (``refinement``, :func:`refinement_shift`).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .. import datasets
from .basis_pursuit import DEEPEM_LOGT, DEFAULT_LOGT, BasisPursuit, aia_error
from .deepem import DEFAULT_MODEL, SHIPPED_MODELS, DeepEM
from .io import read_aia

BP_TOLFAC = 1.4
BP_LOOSEST_TOLFAC = 1.4 * 2.25


def _within(model: np.ndarray, y: np.ndarray, sigma: np.ndarray, tolfac: float) -> np.ndarray:
    return _within_each(model, y, sigma, tolfac)


def _on_grid(em: np.ndarray, logt: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """``em`` (nT, npix) on ``logt`` placed on ``grid`` by matching bins; absent bins are 0."""
    if len(logt) == len(grid) and np.allclose(logt, grid, atol=1e-6):
        return em
    out = np.zeros((len(grid), em.shape[1]), dtype=em.dtype)
    for i, v in enumerate(grid):
        j = np.flatnonzero(np.abs(np.asarray(logt) - v) < 1e-6)
        if j.size:
            out[i] = em[int(j[0])]
    return out


def _grid_of(res) -> np.ndarray:
    """The result's log T grid: its ``logt``, else the shipped grid with its number of bins."""
    logt = getattr(res, "logt", None)
    if logt is not None:
        return np.asarray(logt)
    nt = res.em.shape[0]
    for grid in (DEEPEM_LOGT, DEFAULT_LOGT):
        if len(grid) == nt:
            return np.asarray(grid)
    raise ValueError(
        f"a result with {nt} temperature bins and no logt: give it a logt attribute "
        f"(the shipped grids have {len(DEEPEM_LOGT)} and {len(DEFAULT_LOGT)} bins)"
    )


def compare(bp_res, dl_res, y: np.ndarray, sigma: np.ndarray) -> dict:
    """Agreement metrics of two results on the same pixels (see the module docstring).

    ``bp_res`` is the reference; ``dl_res`` may be on another log T grid (bins matched by
    value, absent bins count as EM 0). Grids come from the results' ``logt`` (for a result
    without one, the shipped grid with its number of bins: 18 or 21).
    """
    grid = _grid_of(bp_res)
    nt = bp_res.em.shape[0]
    em_bp = bp_res.em.reshape(nt, -1)
    em_dl = dl_res.em.reshape(dl_res.em.shape[0], -1)
    em_dl = _on_grid(em_dl, _grid_of(dl_res), grid)
    y = y.reshape(6, -1)
    sigma = sigma.reshape(6, -1)
    ok = bp_res.status.ravel() == 0
    finite = np.all(np.isfinite(y), axis=0)
    # pixels where DeepEM has no EM (NaN: overflow, refinement infeasible) count as out of
    # band below and are left out of the EM statistics (counted in dl_nan_on_bp_ok)
    dl_finite = np.all(np.isfinite(em_dl), axis=0)
    peak = em_bp.max(axis=0)
    significant = (ok & dl_finite)[None, :] & (em_bp > 0.01 * peak[None, :]) & (peak[None, :] > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(em_dl - em_bp) / em_bp
    per_bin = [float(np.median(rel[j, significant[j]])) if significant[j].any() else None for j in range(nt)]
    tot_bp, tot_dl = em_bp.sum(axis=0), em_dl.sum(axis=0)
    both = ok & dl_finite & (tot_bp > 0) & (tot_dl > 0)
    lt_bp = (grid @ em_bp[:, both]) / tot_bp[both]
    lt_dl = (grid @ em_dl[:, both]) / tot_dl[both]
    dlt = np.abs(lt_dl - lt_bp)
    ratio = tot_dl[both] / tot_bp[both]
    model_dl = dl_res.model.reshape(6, -1)
    failed = (~ok) & finite & (bp_res.status.ravel() != 11)
    out = {
        "pixels": int(y.shape[1]),
        "bp_ok": int(ok.sum()),
        "bp_failed": int(failed.sum()),
        "dl_nan_on_bp_ok": int((ok & ~dl_finite).sum()),
        "rel_err_per_bin": per_bin,
        "rel_err_median_all_bins": float(np.median(rel[significant])) if significant.any() else None,
        "logt_em": {"median_abs_diff": float(np.median(dlt)), "p90_abs_diff": float(np.percentile(dlt, 90))},
        "total_em_ratio": {p: float(np.percentile(ratio, q)) for p, q in (("p10", 10), ("median", 50), ("p90", 90))},
        "within_tolerance": float(_within(model_dl[:, ok], y[:, ok], sigma[:, ok], BP_TOLFAC).mean()),
        "bp_within_tolerance": float(
            _within(bp_res.model.reshape(6, -1)[:, ok], y[:, ok], sigma[:, ok], BP_LOOSEST_TOLFAC).mean()
        ),
        "bp_failed_recovered": (
            float(_within(model_dl[:, failed], y[:, failed], sigma[:, failed], BP_LOOSEST_TOLFAC).mean())
            if failed.any()
            else None
        ),
    }
    lt_err = getattr(dl_res, "logt_err", None)
    tot_err = getattr(dl_res, "total_em_err", None)
    if lt_err is not None and tot_err is not None:
        lt_err = np.asarray(lt_err).ravel()[both]
        tot_err = np.asarray(tot_err).ravel()[both]
        out["coverage"] = {
            "logt_em": float(np.mean(dlt <= lt_err)),
            "total_em": float(np.mean(np.abs(tot_dl[both] - tot_bp[both]) <= tot_err)),
        }
    return out


class _Stack:
    """Results of several frames concatenated over pixels, shaped like BPResult for compare()."""

    def __init__(self, parts):
        self.logt = parts[0].logt
        self.em = np.concatenate([p.em.reshape(p.em.shape[0], -1) for p in parts], axis=1)
        self.model = np.concatenate([p.model.reshape(6, -1) for p in parts], axis=1)
        self.status = np.concatenate([p.status.ravel() for p in parts])
        for name in ("logt_err", "total_em_err", "tolfac"):
            errs = [getattr(p, name, None) for p in parts]
            setattr(self, name, None if any(e is None for e in errs) else np.concatenate([e.ravel() for e in errs]))


def _flare_frames(slots: Optional[Sequence[str]]):
    """(observation, sigma in DN/s) of each flare time step."""
    for slot in list(slots or datasets.aia_flare_slots()):
        obs = read_aia(datasets.aia_flare_files(slot))
        t = obs.exptime.reshape(6, 1, 1)
        yield slot, obs, aia_error(np.maximum(np.nan_to_num(obs.data), 0.0) * t, obs.n_sample) / t


def _within_each(model: np.ndarray, y: np.ndarray, sigma: np.ndarray, tolfac) -> np.ndarray:
    # BP solutions (float64) and refined DeepEM ones (float32 EM and model) are LP vertices ON
    # the band's edge: allow their rounding, 1e-9 of the band's width, resp. 1e-6 of its top
    # (float32 rounds the intensity, not the band: y/sigma ~ 100 on bright pixels)
    y = np.maximum(y, 0.0)
    eta = tolfac * sigma
    slack = 1e-6 * (y + eta) if model.dtype == np.float32 else 1e-9 * eta
    return np.all(np.abs(model - y) <= eta + slack, axis=0)


def refinement_shift(
    raw, refined, y: np.ndarray, sigma: np.ndarray, bp_status: np.ndarray, bp_tolfac: np.ndarray
) -> dict:
    """How far ``refine=True`` moved DeepEM's EM, and the in-band fraction before and after.

    Over the pixels the refinement fitted (status 0): median and 90th percentile of
    |Delta log T_EM| (EM-weighted log T, refined - raw, dex), refined / raw total-EM ratio
    percentiles, the fraction whose EM did not change at all. In-band fractions (all six
    channels within 1.4 sigma of y): over BP-ok pixels, before and after; and after, within
    BP's band at the tolfac BP needed for the pixel (1.4, 2.1 or 3.15).
    """
    nt = raw.em.shape[0]
    logt = _grid_of(raw)
    em0, em1 = raw.em.reshape(nt, -1).astype(np.float64), refined.em.reshape(nt, -1).astype(np.float64)
    y, sigma = y.reshape(6, -1), sigma.reshape(6, -1)
    st = refined.status.ravel()
    ok = st == 0
    t0, t1 = em0.sum(axis=0), em1.sum(axis=0)
    both = ok & (t0 > 0) & (t1 > 0)
    lt0 = logt @ em0[:, both] / t0[both]
    lt1 = logt @ em1[:, both] / t1[both]
    dlt = np.abs(lt1 - lt0)
    ratio = t1[both] / t0[both]
    bp_ok = bp_status.ravel() == 0
    m0, m1 = raw.model.reshape(6, -1), refined.model.reshape(6, -1)
    codes, counts = np.unique(st, return_counts=True)
    return {
        "refined_ok": int(ok.sum()),
        "status_counts": {int(c): int(n) for c, n in zip(codes, counts)},
        "unchanged_fraction": float(np.all(em0[:, ok] == em1[:, ok], axis=0).mean()),
        "logt_em_shift": {"median_abs": float(np.median(dlt)), "p90_abs": float(np.percentile(dlt, 90))},
        "total_em_ratio": {p: float(np.percentile(ratio, q)) for p, q in (("p10", 10), ("median", 50), ("p90", 90))},
        "in_band_bp_ok_before": float(_within(m0[:, bp_ok], y[:, bp_ok], sigma[:, bp_ok], BP_TOLFAC).mean()),
        # refined products are NaN where the refinement failed: those count as out of band
        "in_band_bp_ok_after": float(_within(m1[:, bp_ok], y[:, bp_ok], sigma[:, bp_ok], BP_TOLFAC).mean()),
        # in BP's band at BP's own (adaptive) tolfac, over BP-ok pixels
        "in_bp_band_after": float(
            _within_each(m1[:, bp_ok], y[:, bp_ok], sigma[:, bp_ok], bp_tolfac.ravel()[bp_ok]).mean()
        ),
        "bp_ok_refine_failed": int((bp_ok & ~ok).sum()),
    }


def evaluate_deepem(
    deepem: Optional[DeepEM] = None,
    slots: Optional[Sequence[str]] = None,
    threads: Optional[int] = None,
    refine: bool = False,
) -> dict:
    """DeepEM against BP on the model's own grid on the held-out flare series.

    Parameters
    ----------
    deepem : DeepEM, optional
        Default: the default shipped model.
    slots : sequence of str, optional
        Flare time steps (default all ten).
    threads : int, optional

    With ``refine`` also ``refined`` (the same metrics for ``invert(..., refine=True)``)
    and ``refinement`` (:func:`refinement_shift`), over all steps.

    Returns
    -------
    dict
        ``overall`` metrics over all pixels of all steps, and ``per_slot``.

    Examples
    --------
    >>> from fastinv.dem.evaluate import evaluate_deepem
    >>> m = evaluate_deepem(slots=["2011-02-15T01-48"], refine=True)  # doctest: +SKIP
    >>> m["refinement"]["in_band_bp_ok_after"] > m["refinement"]["in_band_bp_ok_before"]  # doctest: +SKIP
    True
    """
    deepem = deepem or DeepEM.load()
    bp = BasisPursuit(logt=deepem.logt)
    per_slot, ys, sigmas, bps, dls, rfs = {}, [], [], [], [], []
    for slot, obs, sigma in _flare_frames(slots):
        r_bp = bp.solve(obs.data, exptime=obs.exptime, n_sample=obs.n_sample, threads=threads)
        r_dl = deepem.invert(obs.data, threads=threads)
        per_slot[slot] = compare(r_bp, r_dl, obs.data, sigma)
        ys.append(obs.data.reshape(6, -1))
        sigmas.append(sigma.reshape(6, -1))
        bps.append(r_bp)
        dls.append(r_dl)
        if refine:
            rfs.append(
                deepem.invert(obs.data, exptime=obs.exptime, n_sample=obs.n_sample, threads=threads, refine=True)
            )
    y_all, s_all = np.concatenate(ys, axis=1), np.concatenate(sigmas, axis=1)
    bp_all = _Stack(bps)
    overall = compare(bp_all, _Stack(dls), y_all, s_all)
    extra = {}
    if refine:
        extra["refined"] = compare(bp_all, _Stack(rfs), y_all, s_all)
        extra["refinement"] = refinement_shift(_Stack(dls), _Stack(rfs), y_all, s_all, bp_all.status, bp_all.tolfac)
    return {
        "data": "AIA 2011-02-15 X2.2 flare cutouts (67x67), " + f"{len(per_slot)} time steps",
        "grid": [round(float(v), 2) for v in deepem.logt],
        "overall": overall,
        "per_slot": per_slot,
        **extra,
    }


def _variants(net: DeepEM) -> dict:
    """The ``invert`` keyword sets to evaluate: raw, and refined where this build has it.

    Uncertainties are asked for where ``invert`` takes ``errors=`` (the coverage column).
    """
    params = inspect.signature(net.invert).parameters
    extra = {"errors": True} if "errors" in params else {}
    out = {"raw": dict(extra)}
    if "refine" in params:
        out["refined"] = {"refine": True, **extra}
    return out


def evaluate_shipped(
    models: Optional[Sequence[str]] = None, slots: Optional[Sequence[str]] = None, threads: Optional[int] = None
) -> dict:
    """Every shipped DeepEM model, raw and refined, against BP on BP's default 21-bin grid.

    Parameters
    ----------
    models : sequence of str, optional
        Names from :data:`fastinv.dem.deepem.SHIPPED_MODELS` (default all) or model files.
    slots : sequence of str, optional
        Flare time steps (default all ten).
    threads : int, optional

    Returns
    -------
    dict
        ``bp_feasible``: fraction of finite pixels BP solves on each model's grid and on the
        21-bin grid; ``models``: for each model, ``raw`` (and ``refined`` where
        ``DeepEM.invert(refine=True)`` exists) :func:`compare` metrics over all steps, with
        BP on the 21-bin grid as reference (``within_tolerance`` is the in-band fraction over
        its feasible pixels). ``refined`` and ``coverage`` are absent, with a line in
        ``notes``, where this build lacks ``refine=`` / ``errors=``.

    Examples
    --------
    >>> from fastinv.dem.evaluate import evaluate_shipped
    >>> m = evaluate_shipped(slots=["2011-02-15T01-48"])  # doctest: +SKIP
    >>> sorted(m["models"])  # doctest: +SKIP
    ['deepem18', 'deepem21']
    """
    names = list(models or SHIPPED_MODELS)
    nets = {name: DeepEM.load(name) for name in names}
    grids = {"21": DEFAULT_LOGT, **{str(len(n.logt)): n.logt for n in nets.values()}}
    bps = {key: BasisPursuit(logt=g) for key, g in grids.items()}
    ys, sigmas, refs, feasible, results = [], [], [], {k: [] for k in bps}, {}
    for _, obs, sigma in _flare_frames(slots):
        finite = np.all(np.isfinite(obs.data), axis=0).ravel()
        for key, bp in bps.items():
            r = bp.solve(obs.data, exptime=obs.exptime, n_sample=obs.n_sample, threads=threads)
            feasible[key].append(r.status.ravel()[finite] == 0)
            if key == "21":
                refs.append(r)
        ys.append(obs.data.reshape(6, -1))
        sigmas.append(sigma.reshape(6, -1))
        for name, net in nets.items():
            for variant, kwargs in _variants(net).items():
                res = net.invert(obs.data, exptime=obs.exptime, n_sample=obs.n_sample, threads=threads, **kwargs)
                results.setdefault(name, {}).setdefault(variant, []).append(res)
    y, sig, ref = np.concatenate(ys, axis=1), np.concatenate(sigmas, axis=1), _Stack(refs)
    out_models = {
        name: {variant: compare(ref, _Stack(parts), y, sig) for variant, parts in variants.items()}
        for name, variants in results.items()
    }
    for name, net in nets.items():
        out_models[name]["grid"] = [round(float(net.logt[0]), 2), round(float(net.logt[-1]), 2), len(net.logt)]
    notes = []
    if any("refined" not in v for v in out_models.values()):
        notes.append("refined: not measured, DeepEM.invert(refine=True) does not exist in this build")
    if any("coverage" not in v["raw"] for v in out_models.values()):
        notes.append("coverage: not measured, DeepEM.invert(errors=True) does not exist in this build")
    return {
        "data": f"AIA 2011-02-15 X2.2 flare cutouts (67x67), {len(ys)} time steps",
        "reference": "fastinv Basis Pursuit on log T 5.5..7.5 (21 bins), tolfac 1.4 adaptive",
        "bp_feasible": {f"{k}_bins": float(np.concatenate(v).mean()) for k, v in feasible.items()},
        "models": out_models,
        "default_model": DEFAULT_MODEL,
        "notes": notes,
    }


def hot_synthetic_logt_error(net: DeepEM, n: int = 2000, seed: int = 1, threads: Optional[int] = None) -> dict:
    """|log T_EM(network) - log T_EM(truth)| on synthetic hot pixels (components at log T
    7.0-7.4 on a background, :func:`fastinv.dem.synthetic.hot_dems`; seed 1 by default,
    the shipped 21-bin model was trained on seed 0's pixels). Median and 90th percentile, dex.
    """
    from .synthetic import hot_dems

    syn = hot_dems(n, seed=seed, hot_centre=(7.0, 7.4))
    res = net.invert(syn.y, sigma=syn.sigma, threads=threads)
    err = np.abs(res.logt_mean - syn.logt_em)[res.status == 0]
    return {"pixels": int(n), "median": float(np.median(err)), "p90": float(np.percentile(err, 90))}


def format_table(metrics: dict) -> str:
    """:func:`evaluate_shipped`'s metrics as a plain-text table (one column per model/variant)."""
    cols = [(name, variant) for name, v in metrics["models"].items() for variant in ("raw", "refined") if variant in v]
    rows = [
        ("in-band (BP 1.4 sigma), BP-feasible px", lambda m: f"{100 * m['within_tolerance']:.1f} %"),
        ("median |dEM|/EM, all bins", lambda m: _fmt(m["rel_err_median_all_bins"])),
        ("|d log T_EM| median (dex)", lambda m: f"{m['logt_em']['median_abs_diff']:.3f}"),
        ("|d log T_EM| p90 (dex)", lambda m: f"{m['logt_em']['p90_abs_diff']:.3f}"),
        (
            "total EM ratio p10/50/90",
            lambda m: "/".join(f"{m['total_em_ratio'][k]:.2f}" for k in ("p10", "median", "p90")),
        ),
        (
            "coverage log T / total EM",
            lambda m: (
                f"{100 * m['coverage']['logt_em']:.0f}/{100 * m['coverage']['total_em']:.0f} %"
                if "coverage" in m
                else "n/a"
            ),
        ),
    ]
    grid = DEFAULT_LOGT
    for j, v in enumerate(grid):
        rows.append((f"|dEM|/EM log T {v:.1f}", lambda m, j=j: _fmt(m["rel_err_per_bin"][j])))
    head = ["metric"] + [f"{n if n in SHIPPED_MODELS else Path(n).stem} {v}" for n, v in cols]
    body = [[label] + [fn(metrics["models"][n][v]) for n, v in cols] for label, fn in rows]
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in [head, *body]]
    feas = ", ".join(f"{k.replace('_', ' ')}: {100 * v:.1f} %" for k, v in metrics["bp_feasible"].items())
    lines.append(f"BP-feasible flare pixels ({feas}); reference: {metrics['reference']}")
    lines.extend(metrics["notes"])
    return "\n".join(lines)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.2f}"
