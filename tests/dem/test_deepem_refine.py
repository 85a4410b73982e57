"""DeepEM.invert(..., refine=True): the C++ refinement (cpp/src/dem/deepem_refine.cpp) against
the same LP solved by scipy.optimize.linprog (HiGHS), on the shipped network's EM for the
held-out flare cutouts and on synthetic pixels, plus its status, NaN and threading rules.

The LP per pixel (n = the network's EM, K the float32 response on its 18 bins, sigma BP's):
    minimise sum_t w_t |EM_t - n_t|,  w_t = 1 / (n_t + 0.01 max n)
    subject to max(y - tf sigma, 0) <= K EM <= y + tf sigma,  EM >= 0,
with tf the first of BP's 1.4, 2.1, 3.15 at which it is feasible.
"""

from __future__ import annotations

import numpy as np
import pytest
from fastinv import _core, datasets
from fastinv.dem import DeepEM, aia_error
from fastinv.dem.deepem import REFINE_INFEASIBLE
from fastinv.dem.io import read_aia
from fastinv.status import DEM_STATUS

scipy_optimize = pytest.importorskip("scipy.optimize")

TOLFACS = (1.4, 2.1, 3.15)
FLOOR = 0.01
# objective: 1e-6 relative, or 1e-7 of sum_t w_t n_t (the cost of removing the network's whole
# EM) where it is ~0: HiGHS's tolerances (1e-7 on the scaled LP) and the float32 EM's rounding.
# Measured on the flare pixels: at most 4e-5 relative on a 7e-4 objective (3e-8 absolute).
OBJ_RTOL = 1e-6
OBJ_ATOL = 1e-7
# constraints: within 1e-6 of the band's upper edge (float32 EM rounding is ~6e-8)
CON_RTOL = 1e-6


def weights(n: np.ndarray) -> np.ndarray:
    nmax = n.max()
    return 1.0 / (n + (FLOOR * nmax if nmax > 0 else 1.0))


def reference(k: np.ndarray, n: np.ndarray, y: np.ndarray, sigma: np.ndarray):
    """(tolfac, EM, objective) by HiGHS, or (None, None, None) if infeasible at every tolfac."""
    y = np.maximum(y, 0.0)
    nt = n.size
    scale = max(n.max(), 1e20)  # EM in units of `scale`; rows in units of the band's top
    w = weights(n)
    for tf in TOLFACS:
        lo, up = np.maximum(y - tf * sigma, 0.0), y + tf * sigma
        ks = k * scale / up[:, None]
        kn = k @ n / up
        a = np.block([[ks, -ks], [-ks, ks]])
        b = np.concatenate([1.0 - kn, -(lo / up - kn)])
        c = np.concatenate([w, w]) * scale
        c = c / c.min()
        bounds = [(0, None)] * nt + [(0, v / scale) for v in n]
        r = scipy_optimize.linprog(c, A_ub=a, b_ub=b, bounds=bounds, method="highs")
        if r.status == 2:
            continue
        assert r.status == 0, r.message
        em = n + (r.x[:nt] - r.x[nt:]) * scale
        return tf, em, float(w @ np.abs(em - n))
    return None, None, None


def check_against_reference(k32, net, y, sigma, em, status, tolfac):
    """Every pixel of (nT, npix) `net` refined to `em` by C++ against HiGHS."""
    k = k32.astype(np.float64)
    n_ok = n_inf = 0
    for p in range(net.shape[1]):
        tf, em_ref, obj_ref = reference(k, net[:, p].astype(np.float64), y[:, p], sigma[:, p])
        if tf is None:
            assert status[p] == REFINE_INFEASIBLE, p
            assert np.isnan(em[:, p]).all()
            n_inf += 1
            continue
        assert status[p] == 0, (p, status[p], tf)
        assert tolfac[p] == tf
        e = em[:, p].astype(np.float64)
        n = net[:, p].astype(np.float64)
        assert (e >= 0).all()
        lo, up = np.maximum(np.maximum(y[:, p], 0) - tf * sigma[:, p], 0), np.maximum(y[:, p], 0) + tf * sigma[:, p]
        ke = k @ e
        assert np.all(ke <= up * (1 + CON_RTOL)) and np.all(ke >= lo - CON_RTOL * up), p
        obj = float(weights(n) @ np.abs(e - n))
        assert abs(obj - obj_ref) <= OBJ_RTOL * obj_ref + OBJ_ATOL * float(weights(n) @ n), (p, obj, obj_ref)
        n_ok += 1
    return n_ok, n_inf


@pytest.fixture(scope="module")
def flare():
    obs = read_aia(datasets.aia_flare_files())
    y = obs.data.reshape(6, -1).astype(np.float64)
    t = obs.exptime.reshape(6, 1)
    sigma = aia_error(np.maximum(y, 0.0) * t, obs.n_sample) / t
    return obs, y, sigma


@pytest.fixture(scope="module")
def deepem():
    return DeepEM.load("deepem18")  # the 18-bin model these tests' shapes and bars were set on


def test_status_code_registered():
    assert REFINE_INFEASIBLE == 14 and "refine" in DEM_STATUS[14]


def test_flare_against_highs(deepem, flare):
    obs, y, sigma = flare
    raw = deepem.invert(obs.data, threads=1)
    res = deepem.invert(obs.data, exptime=obs.exptime, n_sample=obs.n_sample, threads=1, refine=True)
    pick = np.arange(0, y.shape[1], 7)  # 642 of the 4489 pixels
    net = raw.em.reshape(18, -1)[:, pick]
    n_ok, n_inf = check_against_reference(
        deepem._kernel32,
        net,
        y[:, pick],
        sigma[:, pick],
        res.em.reshape(18, -1)[:, pick],
        res.status.ravel()[pick],
        res.tolfac.ravel()[pick],
    )
    assert n_ok > 500 and n_inf > 0  # both branches exercised on real data
    # products follow the refined EM: re-synthesis and total EM (NaN where not ok)
    ok = res.status.ravel() == 0
    em = res.em.reshape(18, -1)
    np.testing.assert_allclose(
        res.model.reshape(6, -1)[:, ok], deepem._kernel32.astype(float) @ em[:, ok].astype(float), rtol=1e-6
    )
    assert np.isnan(res.objective.ravel()[~ok]).all() and np.isnan(res.chi2.ravel()[~ok]).all()
    # a pixel the network already fits keeps its EM bitwise (the LP starts at it)
    k = deepem._kernel32.astype(np.float64)
    raw_em = raw.em.reshape(18, -1).astype(np.float64)
    yy = np.maximum(y, 0)
    fits = np.all(np.abs(k @ raw_em - yy) <= 1.4 * sigma * (1 - 1e-6), axis=0)
    assert fits.any()
    np.testing.assert_array_equal(em[:, fits], raw.em.reshape(18, -1)[:, fits])


def test_synthetic_against_highs(deepem):
    rng = np.random.default_rng(3)
    npix, nt = 300, 18
    k32 = deepem._kernel32
    logt = deepem.logt

    # smooth "network" EMs (one or two Gaussians in log T) and data from other smooth EMs
    def smooth(m):
        c = rng.uniform(5.7, 7.1, (m, 1))
        return (10 ** rng.uniform(26, 28.5, (m, 1)) * np.exp(-(((logt - c) / rng.uniform(0.1, 0.4, (m, 1))) ** 2))).T

    net = smooth(npix).astype(np.float32)
    net[:, :10] *= (rng.random((nt, 10)) > 0.5).astype(np.float32)  # bins exactly 0
    truth = smooth(npix) * rng.uniform(0.3, 3.0, npix)
    y = k32.astype(np.float64) @ truth
    sigma = 0.05 * y + 0.5
    y = y + sigma * rng.standard_normal(y.shape)
    y[:, :20] = np.abs(y[:, :20]) * rng.uniform(0, 5, (6, 20))  # inconsistent channels: often infeasible
    em = net.copy()
    status, tolfac, iterations = _core.dem.deepem_refine(k32, em, y, sigma, None, 1.0, 1)
    n_ok, n_inf = check_against_reference(k32, net, y, sigma, em, status, tolfac)
    assert n_ok > 200 and n_inf > 0
    assert (iterations[status == 0] >= 0).all()
    # any thread count: bitwise
    for threads in (2, 3):
        em2 = net.copy()
        st2, tf2, it2 = _core.dem.deepem_refine(k32, em2, y, sigma, None, 1.0, threads)
        np.testing.assert_array_equal(em2, em)
        np.testing.assert_array_equal(st2, status)
        np.testing.assert_array_equal(it2, iterations)


def test_threads_bitwise_and_standalone_equal_fused(deepem, flare):
    obs = flare[0]
    runs = [deepem.invert(obs.data, exptime=obs.exptime, threads=t, refine=True) for t in (1, 2, 3)]
    for r in runs[1:]:
        for name in ("em", "status", "tolfac", "objective", "model", "chi2", "iterations"):
            np.testing.assert_array_equal(getattr(r, name), getattr(runs[0], name), err_msg=name)
    # the stand-alone refinement of the network's EM (the NumPy path uses it) equals the fused loop's
    num = deepem._invert_numpy(obs.data, obs.exptime, None, obs.n_sample, 1, True)
    for name in ("em", "status", "tolfac", "objective", "iterations"):
        np.testing.assert_array_equal(getattr(num, name), getattr(runs[0], name), err_msg=name)


def test_bad_and_empty_pixels(deepem, flare):
    obs = flare[0]
    y = obs.data[:, :5, :7].astype(np.float64).copy()
    y[:, 0, 0] = np.nan  # bad input
    y[3, 0, 1] = np.inf
    y[:, 0, 2] = 0.0  # no counts
    y[:, 0, 3] = -2.0  # negative: counts as 0 (BP)
    sigma = aia_error(np.maximum(np.where(np.isfinite(y), y, 0.0), 0.0) * 2.0, 1.0) / 2.0
    sigma[2, 0, 4] = np.nan  # a bad error is bad input too
    res = deepem.invert(y, sigma=sigma, refine=True, threads=1)
    assert list(res.status[0, :5]) == [12, 12, 11, 11, 12]
    for name in ("objective", "chi2"):
        assert np.isnan(getattr(res, name)[0, :5]).all()
    assert np.isnan(res.em[:, 0, :5]).all() and np.isnan(res.model[:, 0, :5]).all()
    assert (res.status[1:] == 0).all() or set(np.unique(res.status[1:])) <= {0, 14}
    with pytest.raises(ValueError, match="exptime"):
        deepem.invert(y, refine=True)


def test_cli_refine_writes_refine_map(tmp_path, deepem):
    from astropy.io import fits
    from fastinv.cli import main

    files = [str(f) for f in datasets.aia_flare_files()]
    out = tmp_path / "refined.fits"
    assert main(["dem", "deepem", *files, "-o", str(out), "--refine", "--threads", "1", "--model", "deepem18"]) == 0
    obs = read_aia(datasets.aia_flare_files())
    res = deepem.invert(obs.data, exptime=obs.exptime, n_sample=obs.n_sample, refine=True, threads=1)
    with fits.open(out) as h:
        assert h[0].header["FI_REFIN"] is True
        np.testing.assert_array_equal(h["STATUS"].data, res.status)
        refine = h["REFINE"].data
        np.testing.assert_array_equal(h[0].data, res.em)  # NaN where the refinement failed
    moved = (res.status == 0) & np.any(res.em != deepem.invert(obs.data, threads=1).em, axis=0)
    np.testing.assert_array_equal(refine == 1, moved)
    np.testing.assert_array_equal(refine >= 2, res.status != 0)
    np.testing.assert_array_equal(refine[refine >= 2], res.status[refine >= 2])


def test_dask_blocks_equal_numpy(deepem, flare):
    da = pytest.importorskip("dask.array")
    obs = flare[0]
    ref = deepem.invert(obs.data, exptime=obs.exptime, refine=True, threads=1)
    lazy = deepem.invert(da.from_array(obs.data, chunks=(6, 20, 67)), exptime=obs.exptime, refine=True)
    np.testing.assert_array_equal(np.asarray(lazy.em), ref.em)  # every pixel solved on its own
    np.testing.assert_array_equal(np.asarray(lazy.status), ref.status)


@pytest.mark.parametrize("seed", range(3))
def test_degenerate_random_responses_against_highs(seed):
    """The bounded dual simplex's bound flipping (long steps through the boxed logicals and
    q <= n) on degenerate LPs rather than AIA-like ones: a random 6 x nT response with
    duplicated, parallel and empty columns, network EMs with zero bins, data that some EM of
    the response reproduces exactly (degenerate vertices), some inconsistent pixels and some
    nearly equality rows (sigma = 1e-5): same tolfac, objective and status as HiGHS."""
    rng = np.random.default_rng(700 + seed)
    nt, npix = int(rng.integers(8, 25)), 120
    k32 = (rng.uniform(0, 1, (6, nt)) * (rng.uniform(size=(6, nt)) < 0.7)).astype(np.float32)
    k32[:, 1] = k32[:, 0]
    k32[:, 2] = 0.0
    k32[:, 3] = 2 * k32[:, 4]
    k32[0, 0] = k32[0, 1] = 1.0  # no all-zero row
    k32 *= np.float32(1e-26)  # AIA-like magnitudes: EM ~1e26 cm^-5 (the reference's scaling)
    net = (1e26 * rng.uniform(0, 1, (nt, npix)) * (rng.uniform(size=(nt, npix)) < 0.6)).astype(np.float32)
    x0 = 1e26 * rng.uniform(0, 1, (nt, npix)) * (rng.uniform(size=(nt, npix)) < 4 / nt)
    y = k32.astype(np.float64) @ x0
    y[:, ::4] += rng.normal(0, 0.5, (6, npix // 4))  # some inconsistent
    y = np.abs(y) + 0.01  # every band's top > 0 (the reference scales rows by it)
    sigma = rng.uniform(0.001, 0.05, (6, npix))
    sigma[:, ::7] = 1e-5  # nearly equality rows
    em = net.copy()
    status, tolfac, _ = _core.dem.deepem_refine(k32, em, y, sigma, None, 1.0, 1)
    n_ok, n_inf = check_against_reference(k32, net, y, sigma, em, status, tolfac)
    assert n_ok > 30 and n_inf > 5, (n_ok, n_inf)
