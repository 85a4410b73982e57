"""fastinv's Basis Pursuit vs scipy.optimize.linprog(method="highs") on the same LPs.

Optima are degenerate, so we compare verdicts, objectives and the re-synthesised DN (the
constraints), never the coefficients themselves.
"""

from __future__ import annotations

import numpy as np
import pytest
from dem_helpers import EXPTIME, highs, synthetic_pixels
from fastinv import datasets
from fastinv.dem import BasisPursuit
from fastinv.dem.io import read_aia

OBJ_RTOL = 1e-6  # objective, relative to HiGHS's
CON_RTOL = 1e-9  # constraint violation, relative to the pixel's largest band edge


def check_against_highs(bp1: BasisPursuit, y: np.ndarray, sigma: np.ndarray, tolfac: float):
    """Solve every pixel with fastinv (no retries) and HiGHS; assert agreement."""
    res = bp1.solve(y, sigma=sigma, threads=2)
    D = bp1.dictionary
    ok = res.status == 0
    n_cmp = 0
    for i in range(y.shape[1]):
        if res.status[i] in (11, 12):
            continue
        st, fun, _ = highs(D, y[:, i], tolfac * sigma[:, i])
        assert st in (0, 2), f"HiGHS status {st} at pixel {i}"
        assert (st == 0) == ok[i], f"pixel {i}: HiGHS {st}, fastinv {res.status[i]}"
        n_cmp += 1
        if st == 0:
            assert res.objective[i] == pytest.approx(fun, rel=OBJ_RTOL, abs=1e-300)
    # constraints met by the re-synthesised DN of every solved pixel
    yc = np.maximum(y, 0)
    up, lo = yc + tolfac * sigma, np.maximum(yc - tolfac * sigma, 0)
    scale = up.max(axis=0)
    m = res.model[:, ok]
    assert np.all(m - up[:, ok] <= CON_RTOL * scale[ok])
    assert np.all(lo[:, ok] - m <= CON_RTOL * scale[ok])
    assert np.all(res.coeffs >= 0)
    np.testing.assert_allclose(res.objective[ok], res.coeffs[:, ok].sum(axis=0), rtol=1e-12)
    return res, n_cmp


def test_synthetic_2000_pixels_vs_highs(bp):
    y, _ = synthetic_pixels(bp, 2000, seed=0)
    sigma = bp.sigma(y, EXPTIME)
    bp1 = BasisPursuit(adaptive=False)
    res14, n = check_against_highs(bp1, y, sigma, 1.4)
    assert n == 2000
    # Adaptive retries: each pixel solved at 2.1 or 3.15 must be infeasible for HiGHS at the
    # smaller tolfacs and optimal, with the same objective, at the one we report.
    res = bp.solve(y, sigma=sigma)
    for i in np.flatnonzero(res.tolfac > 1.5):
        tried = [t for t in bp.tolfacs if t <= res.tolfac[i] + 1e-12]
        for t in tried[:-1]:
            assert highs(bp.dictionary, y[:, i], t * sigma[:, i])[0] == 2
        st, fun, _ = highs(bp.dictionary, y[:, i], tried[-1] * sigma[:, i])
        assert (st == 0) == (res.status[i] == 0)
        if st == 0:
            assert res.objective[i] == pytest.approx(fun, rel=OBJ_RTOL)


def test_feasibility_rates(bp):
    """Issue 3: >= 97 % feasible at tolfac 1.4 and 100 % with adaptive tolfac (research
    baseline 98.1 % / 100 %). On this fixed set (seed 0) we get 98.4 % / 100 %; seeds 1-4 of
    the same generator gave 97.2-98.6 % / 99.85-100 % (the few pixels left are infeasible
    for HiGHS too at tolfac 3.15: a property of the LP and the noise, not of the solver)."""
    y, _ = synthetic_pixels(bp, 2000, seed=0)
    r14 = BasisPursuit(adaptive=False).solve(y, exptime=EXPTIME)
    r = bp.solve(y, exptime=EXPTIME)
    assert np.mean(r14.status == 0) >= 0.97
    assert np.mean(r.status == 0) == 1.0
    assert set(np.unique(r.status)) <= {0, 2}


@pytest.mark.parametrize("tolfac", [1.4])
def test_bundled_cutouts_every_pixel_vs_highs(tolfac):
    obs = read_aia(datasets.aia_flare_files())
    bp = BasisPursuit()
    y = obs.data.reshape(6, -1)
    sigma = bp.sigma(y, obs.exptime)
    _, n = check_against_highs(BasisPursuit(tolfac=tolfac, adaptive=False), y, sigma, tolfac)
    assert n == y.shape[1] == 67 * 67


def test_noiseless_lognormal_recovery(bp):
    """Noiseless log-normal DEMs (log T_c 5.8-6.8, width 0.1-0.5 dex sd, EM0 = 1e29 cm^-5 as
    in Cheung et al. 2015's tests): total EM within 10 %, EM-weighted log T within 0.1 dex
    (issue 3). Measured: 8.4 % and 0.073 dex worst case. (At EM0 = 1e28 the band of 1.4
    sigma is relatively wider and BP's minimal-EM solution undershoots by up to 23 %.)"""
    rng = np.random.default_rng(7)
    n = 400
    tc = rng.uniform(5.8, 6.8, n)
    w = rng.uniform(0.1, 0.5, n)
    lt = bp.logt[:, None]
    dem = np.exp(-0.5 * ((lt - tc) / w) ** 2)
    dem = dem / dem.sum(axis=0) * 1e29
    y = bp.response_on_grid @ dem
    r = bp.solve(y, exptime=EXPTIME)
    assert np.all(r.status == 0)
    true_tot = dem.sum(axis=0)
    true_lt = (bp.logt @ dem) / true_tot
    assert np.max(np.abs(r.total_em / true_tot - 1)) < 0.10
    assert np.max(np.abs(r.logt_mean - true_lt)) < 0.1
    # the re-synthesised data reproduce y within the band
    sig = bp.sigma(y, EXPTIME)
    assert np.all(np.abs(r.model - y) <= r.tolfac * sig * (1 + 1e-9) + 1e-12)


def test_synoptic_full_disk_sample_vs_highs():
    """600 random pixels of the 1024^2 synoptic set (level 1.5, 4x4 means: n_sample = 16),
    adaptive tolfac: same verdict and objective as HiGHS at the tolfac we report."""
    try:
        files = datasets.aia_synoptic_files()
    except OSError as exc:
        pytest.skip(f"synoptic data not obtainable: {exc}")
    obs = read_aia(files, presummed=16)
    assert obs.n_sample == 16
    bp = BasisPursuit()
    idx = np.random.default_rng(1).choice(obs.data[0].size, 600, replace=False)
    y = obs.data.reshape(6, -1)[:, idx]
    sigma = bp.sigma(y, obs.exptime, n_sample=obs.n_sample)
    r = bp.solve(y, sigma=sigma)
    assert np.mean(r.status == 0) > 0.9
    proven = 0
    for i in np.flatnonzero(r.status != 11):
        st, fun, _ = highs(bp.dictionary, y[:, i], r.tolfac[i] * sigma[:, i])
        assert (st == 0) == (r.status[i] == 0), i
        if st == 0:
            assert r.objective[i] == pytest.approx(fun, rel=OBJ_RTOL, abs=1e-12)
        elif highs(bp.dictionary, y[:, i], bp.tolfacs[-1] * (1 + 1e-3) * sigma[:, i])[0] == 2:
            # infeasible beyond the last rung by a clear margin: every rung is decided by a
            # Farkas certificate (cpp/src/dem/band_certificates.cpp), without a simplex iteration
            assert r.iterations[i] == 0, (i, r.iterations[i])
            proven += 1
    assert proven > 5
