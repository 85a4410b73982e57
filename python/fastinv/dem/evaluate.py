"""How close DeepEM is to Basis Pursuit, on AIA data it never saw in training.

The original DeepEM paper published no agreement metric; these are fastinv's, computed
on the 2011-02-15 X2.2 flare series (10 time steps x 6 channels of 67x67 level-1
cutouts) against fastinv's BP on the same 18-bin grid (5.5..7.2):

* ``rel_err_per_bin``: per log T bin, median |EM_DeepEM - EM_BP| / EM_BP over BP-ok pixels
  where EM_BP exceeds 1 % of that pixel's peak bin;
* ``logt_em``: |difference| of the EM-weighted log T (median and 90th percentile, dex);
* ``total_em_ratio``: DeepEM / BP total EM (10th, 50th, 90th percentiles);
* ``within_tolerance``: fraction of BP-ok pixels whose re-synthesised intensities
  K @ EM_DeepEM lie within BP's tolerance band |K EM - y| <= 1.4 sigma in all six channels
  (BP's own solutions satisfy it by construction, up to the adaptive tolfac);
* ``bp_failed_recovered``: fraction of pixels where BP failed (status not ok, input finite
  and with counts) whose DeepEM re-synthesis lies within the loosest BP band, 3.15 sigma.

With ``refine=True`` the same metrics for ``DeepEM.invert(..., refine=True)`` (``refined``)
and how far the refinement moved the network (``refinement``, :func:`refinement_shift`).
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .. import datasets
from .basis_pursuit import DEEPEM_LOGT, BasisPursuit, aia_error
from .deepem import DeepEM
from .io import read_aia

BP_TOLFAC = 1.4
BP_LOOSEST_TOLFAC = 1.4 * 2.25


def _within(model: np.ndarray, y: np.ndarray, sigma: np.ndarray, tolfac: float) -> np.ndarray:
    return _within_each(model, y, sigma, tolfac)


def compare(bp_res, dl_res, y: np.ndarray, sigma: np.ndarray) -> dict:
    """Agreement metrics of two results on the same pixels (see the module docstring)."""
    nt = bp_res.em.shape[0]
    em_bp = bp_res.em.reshape(nt, -1)
    em_dl = dl_res.em.reshape(nt, -1)
    y = y.reshape(6, -1)
    sigma = sigma.reshape(6, -1)
    ok = bp_res.status.ravel() == 0
    finite = np.all(np.isfinite(y), axis=0)
    peak = em_bp.max(axis=0)
    significant = ok[None, :] & (em_bp > 0.01 * peak[None, :]) & (peak[None, :] > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.abs(em_dl - em_bp) / em_bp
    per_bin = [float(np.median(rel[j, significant[j]])) if significant[j].any() else None for j in range(nt)]
    tot_bp, tot_dl = em_bp.sum(axis=0), em_dl.sum(axis=0)
    both = ok & (tot_bp > 0) & (tot_dl > 0)
    lt_bp = (DEEPEM_LOGT @ em_bp[:, both]) / tot_bp[both]
    lt_dl = (DEEPEM_LOGT @ em_dl[:, both]) / tot_dl[both]
    dlt = np.abs(lt_dl - lt_bp)
    ratio = tot_dl[both] / tot_bp[both]
    model_dl = dl_res.model.reshape(6, -1)
    failed = (~ok) & finite & (bp_res.status.ravel() != 11)
    return {
        "pixels": int(y.shape[1]),
        "bp_ok": int(ok.sum()),
        "bp_failed": int(failed.sum()),
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
    em0, em1 = raw.em.reshape(nt, -1).astype(np.float64), refined.em.reshape(nt, -1).astype(np.float64)
    y, sigma = y.reshape(6, -1), sigma.reshape(6, -1)
    st = refined.status.ravel()
    ok = st == 0
    t0, t1 = em0.sum(axis=0), em1.sum(axis=0)
    both = ok & (t0 > 0) & (t1 > 0)
    lt0 = DEEPEM_LOGT @ em0[:, both] / t0[both]
    lt1 = DEEPEM_LOGT @ em1[:, both] / t1[both]
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
    """DeepEM against BP on the held-out flare series (all ten time steps by default).

    With ``refine`` also ``refined`` (the same metrics for ``invert(..., refine=True)``)
    and ``refinement`` (:func:`refinement_shift`), over all steps.

    Returns
    -------
    dict
        ``overall`` metrics over all pixels of all steps, and ``per_slot``.

    Examples
    --------
    >>> m = evaluate_deepem(slots=datasets.aia_flare_slots()[:1], refine=True)  # doctest: +SKIP
    >>> m["refinement"]["in_band_bp_ok_after"] > m["refinement"]["in_band_bp_ok_before"]  # doctest: +SKIP
    True
    """
    deepem = deepem or DeepEM.load()
    bp = BasisPursuit(logt=DEEPEM_LOGT)
    slots = list(slots or datasets.aia_flare_slots())
    per_slot, ys, sigmas, bps, dls, rfs = {}, [], [], [], [], []
    for slot in slots:
        obs = read_aia(datasets.aia_flare_files(slot))
        t = obs.exptime.reshape(6, 1, 1)
        sigma = aia_error(np.maximum(np.nan_to_num(obs.data), 0.0) * t, obs.n_sample) / t
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

    class _Stack:  # the concatenated results, shaped like BPResult for compare()
        def __init__(self, parts):
            self.em = np.concatenate([p.em.reshape(p.em.shape[0], -1) for p in parts], axis=1)
            self.model = np.concatenate([p.model.reshape(6, -1) for p in parts], axis=1)
            self.status = np.concatenate([p.status.ravel() for p in parts])
            self.tolfac = np.concatenate([p.tolfac.ravel() for p in parts])

    y_all, s_all = np.concatenate(ys, axis=1), np.concatenate(sigmas, axis=1)
    overall = compare(_Stack(bps), _Stack(dls), y_all, s_all)
    extra = {}
    if refine:
        extra["refined"] = compare(_Stack(bps), _Stack(rfs), y_all, s_all)
        extra["refinement"] = refinement_shift(
            _Stack(dls), _Stack(rfs), y_all, s_all, _Stack(bps).status, _Stack(bps).tolfac
        )
    return {
        "data": "AIA 2011-02-15 X2.2 flare cutouts (67x67), " + f"{len(slots)} time steps",
        "grid": [round(float(v), 2) for v in DEEPEM_LOGT],
        "overall": overall,
        "per_slot": per_slot,
        **extra,
    }
