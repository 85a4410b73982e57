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
    # BP solutions are LP vertices ON the band's edge: allow rounding (1e-9 relative)
    return np.all(np.abs(model - np.maximum(y, 0.0)) <= tolfac * sigma * (1 + 1e-9), axis=0)


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


def evaluate_deepem(
    deepem: Optional[DeepEM] = None, slots: Optional[Sequence[str]] = None, threads: Optional[int] = None
) -> dict:
    """DeepEM against BP on the held-out flare series (all ten time steps by default).

    Returns
    -------
    dict
        ``overall`` metrics over all pixels of all steps, and ``per_slot``.
    """
    deepem = deepem or DeepEM.load()
    bp = BasisPursuit(logt=DEEPEM_LOGT)
    slots = list(slots or datasets.aia_flare_slots())
    per_slot, ys, sigmas, bps, dls = {}, [], [], [], []
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

    class _Stack:  # the concatenated results, shaped like BPResult for compare()
        def __init__(self, parts):
            self.em = np.concatenate([p.em.reshape(p.em.shape[0], -1) for p in parts], axis=1)
            self.model = np.concatenate([p.model.reshape(6, -1) for p in parts], axis=1)
            self.status = np.concatenate([p.status.ravel() for p in parts])

    overall = compare(_Stack(bps), _Stack(dls), np.concatenate(ys, axis=1), np.concatenate(sigmas, axis=1))
    return {
        "data": "AIA 2011-02-15 X2.2 flare cutouts (67x67), " + f"{len(slots)} time steps",
        "grid": [round(float(v), 2) for v in DEEPEM_LOGT],
        "overall": overall,
        "per_slot": per_slot,
    }
