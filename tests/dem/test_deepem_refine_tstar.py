"""The refinement's tolfac choice against the smallest feasible band t* (docs/deepem-refine.md).

For a pixel, t* = min t such that some EM >= 0 has max(y - t sigma, 0) <= K EM <= y + t sigma
(the responses are >= 0, so the lower clip at 0 holds by itself). The refinement must use the
first tolfac of the ladder (1.4, 2.1, 3.15) that is >= t*, and report status 14 where t* exceeds
the last. The reference is SciPy's HiGHS solving that min-t LP directly; the C++ side never
forms it (it walks the ladder, skipping rungs its last infeasibility proof still covers, and
takes verdicts on un-refactorised values only when they are decisive), so this checks the
shortcuts' verdicts, including pixels whose t* sits exactly on a ladder value.
"""

from __future__ import annotations

import numpy as np
import pytest
from fastinv import _core, datasets
from fastinv.dem import DeepEM, aia_error
from fastinv.dem.deepem import REFINE_INFEASIBLE
from fastinv.dem.io import read_aia

scipy_optimize = pytest.importorskip("scipy.optimize")

TOLFACS = (1.4, 2.1, 3.15)
# HiGHS solves to ~1e-7 on its scaled LP: pixels whose t* is this close (relative) to a rung are
# ambiguous for the reference and are checked by the exact constructions below instead.
AMBIGUOUS = 1e-5
# A certificate must prove a band empty by 1e-5 of its top (BandCertificates::kMargin); t* this
# far (relative) above the last rung is beyond that on these pixels.
CLEAR = 1e-3


def t_star(k: np.ndarray, y: np.ndarray, sigma: np.ndarray) -> float:
    """min t s.t. |K EM - y| <= t sigma, EM >= 0, by HiGHS (EM in units of 1e26, rows per y + sigma)."""
    y = np.maximum(y, 0.0)
    u = float(np.max(y + sigma))
    ks = k * 1e26 / u
    nt = k.shape[1]
    a = np.block([[ks, -sigma[:, None] / u], [-ks, -sigma[:, None] / u]])
    b = np.concatenate([y / u, -y / u])
    c = np.zeros(nt + 1)
    c[-1] = 1.0
    r = scipy_optimize.linprog(c, A_ub=a, b_ub=b, bounds=[(0, None)] * (nt + 1), method="highs")
    assert r.status == 0, r.message
    return float(r.x[-1])


def expected(t: float):
    """(status, tolfac) the ladder gives for t*, or None if t* is within AMBIGUOUS of a rung."""
    if any(abs(t - tf) <= AMBIGUOUS * tf for tf in TOLFACS):
        return None
    for tf in TOLFACS:
        if t < tf:
            return 0, tf
    return REFINE_INFEASIBLE, None


def test_synoptic_tolfac_is_first_rung_above_t_star():
    # the default model (21 bins) on the synoptic frame, where every rung and status 14 are common
    deepem = DeepEM.load()
    k32 = deepem._kernel32
    k = k32.astype(np.float64)
    assert (k >= 0).all()  # the lower clip max(., 0) is then implied by EM >= 0
    obs = read_aia(datasets.aia_synoptic_files(), presummed=16)
    frame = np.nan_to_num(obs.data)
    pick = np.arange(1000, frame[0].size, 1499)  # 699 of the 1024^2 pixels
    y = np.ascontiguousarray(frame.reshape(6, -1)[:, pick].astype(np.float64))
    t = obs.exptime.reshape(6, 1)
    sigma = aia_error(np.maximum(y, 0.0) * t, obs.n_sample) / t
    em = np.ascontiguousarray(deepem.invert(frame, threads=1).em.reshape(deepem.logt.size, -1)[:, pick])
    status, tolfac, iterations = _core.dem.deepem_refine(k32, em, y, sigma, None, 1.0, 1)
    seen = {tf: 0 for tf in TOLFACS} | {"infeasible": 0, "ambiguous": 0}
    for p in range(y.shape[1]):
        ts = t_star(k, y[:, p], sigma[:, p])
        want = expected(ts)
        if want is None:
            seen["ambiguous"] += 1
            continue
        assert status[p] == want[0], (p, status[p], want)
        if want[0] == 0:
            assert tolfac[p] == want[1], (p, tolfac[p], want)
            seen[want[1]] += 1
        else:
            assert np.isnan(em[:, p]).all()
            seen["infeasible"] += 1
            if ts > TOLFACS[-1] * (1 + CLEAR):
                assert iterations[p] == 0, (p, ts, iterations[p])  # every rung proven by a certificate
    # every branch of the ladder exercised on real data
    assert min(seen[tf] for tf in TOLFACS) > 10 and seen["infeasible"] > 10, seen
    assert seen["ambiguous"] <= 3, seen


def test_certificates_on_random_responses():
    # The Farkas certificates (cpp/src/dem/band_certificates.cpp) are enumerated from the
    # response alone; on responses with duplicated, empty and near-parallel columns as well as
    # generic ones, a pixel whose every rung is infeasible by a clear margin (HiGHS's t*) must be
    # decided without a simplex iteration, and every tolfac and status must be HiGHS's.
    rng = np.random.default_rng(7)
    checked = {"ok": 0, "proven": 0}
    for trial in range(6):
        nt = int(rng.integers(4, 19))
        k = rng.random((6, nt)) ** 3
        k[rng.random((6, nt)) < 0.3] = 0.0
        k[:, 0] = 0.0  # an empty column
        k[:, 1] = k[:, 2]  # a duplicated one
        k[:, 3] = k[:, 2] * (1 + 1e-9)  # and a near-parallel one
        k32 = (k * 1e-26).astype(np.float32)
        k = k32.astype(np.float64)
        npix = 40
        x = rng.random((nt, npix)) * 1e26
        y = (k @ x) * rng.uniform(0.3, 3.0, (6, npix))  # channels made inconsistent by up to 10x
        sigma = 0.05 * y + 0.01
        em = np.ascontiguousarray(rng.random((nt, npix)).astype(np.float32) * 1e26)
        status, tolfac, iterations = _core.dem.deepem_refine(k32, em, y, sigma, None, 1.0, 1)
        for p in range(npix):
            ts = t_star(k, y[:, p], sigma[:, p])
            want = expected(ts)
            if want is None:
                continue
            assert status[p] == want[0], (trial, p, status[p], ts)
            if want[0] == 0:
                assert tolfac[p] == want[1], (trial, p, tolfac[p], ts)
                checked["ok"] += 1
            elif ts > TOLFACS[-1] * (1 + CLEAR):
                assert iterations[p] == 0, (trial, p, ts, iterations[p])
                checked["proven"] += 1
    assert checked["ok"] > 20 and checked["proven"] > 20, checked


def one_bin_pixel(y2: float, n: float = 1.0):
    """One temperature bin seen by two channels with sigma 1: y = (0, y2). Any EM e >= 0 fits
    channel 1 iff e <= t and channel 2 iff e >= y2 - t, so t* = y2 / 2 exactly."""
    k = np.zeros((6, 1), np.float32)
    k[:2, 0] = 1.0
    y = np.zeros((6, 1))
    y[1, 0] = y2
    sigma = np.ones((6, 1))
    em = np.full((1, 1), n, np.float32)
    status, tolfac, _ = _core.dem.deepem_refine(k, em, y, sigma, None, 1.0, 1)
    return int(status[0]), float(tolfac[0]), float(em[0, 0])


@pytest.mark.parametrize("tf", TOLFACS)
def test_t_star_exactly_on_a_rung(tf):
    # 2 tf is exact in binary and y2 - tf = tf exactly: the band's edges meet at e = tf. The
    # rung is feasible (a single point) and must be the one chosen, as HiGHS agrees.
    y2 = 2.0 * tf
    assert y2 - tf == tf
    k = np.zeros((6, 1))
    k[:2, 0] = 1.0
    y = np.zeros(6)
    y[1] = y2
    assert abs(t_star(k * 1e-26, y, np.ones(6)) - tf) <= 1e-7 * tf
    status, tolfac, e = one_bin_pixel(y2)
    assert (status, tolfac) == (0, tf)
    assert abs(e - tf) <= 1e-6 * tf  # the only feasible EM (float32)


@pytest.mark.parametrize("tf", TOLFACS)
def test_t_star_just_above_a_rung(tf):
    # 1e-6 above the rung (far beyond the solver's 1e-10 tolerance): the next rung, or 14
    status, tolfac, e = one_bin_pixel(2.0 * tf * (1 + 1e-6))
    nxt = [t for t in TOLFACS if t > tf]
    if nxt:
        assert (status, tolfac) == (0, nxt[0])
        assert np.isfinite(e)
    else:
        assert status == REFINE_INFEASIBLE and np.isnan(e)
