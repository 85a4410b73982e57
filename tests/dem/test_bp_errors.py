"""Monte-Carlo error bars of Basis Pursuit DEMs: determinism, the draws, feasibility against
SciPy's HiGHS, and calibration on synthetic DEMs whose truth is known."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from fastinv import _core, datasets
from fastinv.dem import BasisPursuit, aia_error
from fastinv.dem.basis_pursuit import TOTAL_EM_MODEL_REL
from fastinv.dem.io import read_aia
from fastinv.dem.pipelines import run_bp

pytestmark = pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")


@pytest.fixture(scope="module")
def flare():
    return read_aia(datasets.aia_flare_files())


def _same(a, b):
    return np.array_equal(a, b, equal_nan=True)


def test_errors_leave_the_solution_alone_and_do_not_depend_on_threads(bp, flare):
    plain = bp.solve(flare.data, exptime=flare.exptime)
    runs = [bp.solve(flare.data, exptime=flare.exptime, n_samples=20, seed=7, threads=t) for t in (1, 2, 3)]
    for r in runs:
        assert _same(r.em, plain.em) and _same(r.status, plain.status) and _same(r.chi2, plain.chi2)
        for name in ("em_err", "logt_err", "total_em_err", "mc_feasible"):
            assert _same(getattr(r, name), getattr(runs[0], name)), name
    r = runs[0]
    ok = r.status == 0
    assert plain.em_err is None and r.mc_samples == 20 and r.mc_seed == 7
    assert np.isnan(r.logt_err[~ok]).all() and np.isnan(r.em_err[:, ~ok]).all()
    assert np.isfinite(r.total_em_err[ok]).mean() > 0.95 and (r.mc_feasible[ok] > 0).all()
    other = bp.solve(flare.data, exptime=flare.exptime, n_samples=20, seed=8)
    assert not _same(other.logt_err, r.logt_err)  # the seed matters


def test_an_image_in_parts_has_the_errors_of_one_call(bp, flare):
    whole = bp.solve(flare.data, exptime=flare.exptime, n_samples=10, seed=3)
    nx = flare.data.shape[2]
    top = bp.solve(flare.data[:, :30], exptime=flare.exptime, n_samples=10, seed=3)
    bottom = bp.solve(flare.data[:, 30:], exptime=flare.exptime, n_samples=10, seed=3, first_pixel=30 * nx)
    assert _same(np.concatenate([top.logt_err, bottom.logt_err]), whole.logt_err)


def test_the_draws_are_independent_standard_normals():
    from scipy import stats

    z = np.concatenate([_core._testing.bp_mc_normals(11, p, 600) for p in range(50)])
    assert stats.kstest(z, "norm").pvalue > 1e-3
    a = np.stack([_core._testing.bp_mc_normals(11, p, 2000) for p in (0, 1)])
    assert abs(np.corrcoef(a)[0, 1]) < 4 / np.sqrt(2000)  # neighbouring pixels: uncorrelated
    assert abs(np.corrcoef(a[0, :-1], a[0, 1:])[0, 1]) < 4 / np.sqrt(2000)  # successive draws too


def test_feasibility_of_the_draws_agrees_with_highs(bp, flare):
    """Every draw re-solved by HiGHS: the feasible count per pixel must be ours."""
    from scipy.optimize import linprog

    n, seed = 24, 5
    y = flare.data.reshape(6, -1)
    sigma = bp.sigma(y, flare.exptime)
    res = bp.solve(y, sigma=sigma, n_samples=n, seed=seed)
    pixels = np.flatnonzero(res.status == 0)[::200][:12]
    D = bp.dictionary
    agree = 0
    for i in pixels:
        z = _core._testing.bp_mc_normals(seed, int(i), n * 6).reshape(n, 6)
        feasible = 0
        for k in range(n):
            ys = np.maximum(y[:, i] + sigma[:, i] * z[k], 0.0)
            tf = res.tolfac[i]
            lo, up = np.maximum(ys - tf * sigma[:, i], 0.0), ys + tf * sigma[:, i]
            r = linprog(
                np.ones(D.shape[1]),
                A_ub=np.vstack([D, -D]),
                b_ub=np.concatenate([up, -lo]),
                bounds=(0, None),
                method="highs",
            )
            feasible += r.status == 0
        agree += feasible == round(res.mc_feasible[i] * n)
    assert agree >= len(pixels) - 1  # (a draw on the very edge of feasibility may differ)


def test_calibration_on_synthetic_dems():
    """Gaussian DEMs with AIA noise: the fraction of pixels whose true EM-weighted log T lies
    within the 1-sigma error must be 60-80 % (68 % for an exact Gaussian error); the same for the
    total EM, whose error adds the sparse solution's own (TOTAL_EM_MODEL_REL, fitted on other
    seeds) to the Monte-Carlo spread, which alone covers 53 %."""
    bp = BasisPursuit()
    rng = np.random.default_rng(5)
    n, lt = 1000, bp.logt
    c, w = rng.uniform(5.9, 6.7, n), rng.uniform(0.1, 0.3, n)
    em = np.exp(-0.5 * ((lt[:, None] - c) / w) ** 2)
    em *= 10 ** rng.uniform(26.5, 28.5, n) / em.sum(0)
    y_true = bp.response_on_grid @ em
    t = np.array([2.9, 2.9, 2.0, 2.0, 2.9, 2.9])[:, None]
    sigma = aia_error(y_true * t, 1.0) / t
    y = y_true + sigma * rng.standard_normal(y_true.shape)
    r = bp.solve(y, sigma=sigma, n_samples=100, seed=1)
    ok = r.status == 0
    assert ok.mean() > 0.99
    true_lt = (lt[:, None] * em).sum(0) / em.sum(0)
    inside_lt = (np.abs(r.logt_mean - true_lt) <= r.logt_err)[ok].mean()
    inside_tot = (np.abs(r.total_em - em.sum(0)) <= r.total_em_err)[ok].mean()
    assert 0.60 <= inside_lt <= 0.80, inside_lt
    assert 0.60 <= inside_tot <= 0.80, inside_tot
    mc_only = np.sqrt(r.total_em_err**2 - (TOTAL_EM_MODEL_REL * r.total_em) ** 2)
    assert 0.45 <= (np.abs(r.total_em - em.sum(0)) <= mc_only)[ok].mean() < 0.60  # what the term fixes


def test_fits_and_cli_carry_the_errors(tmp_path, capsys):
    from fastinv.cli import main

    files = [str(f) for f in datasets.aia_flare_files()]
    out = tmp_path / "dem.fits"
    assert main(["dem", "bp", *files, "-o", str(out), "--bin", "4", "--errors", "8", "--seed", "2", "-q"]) == 0
    res = run_bp(files, tmp_path / "api.fits", bin=4, errors=8, seed=2, progress=False, chunk_rows=5)
    with fits.open(out) as h:
        assert h[0].header["FI_MCN"] == 8 and h[0].header["FI_MCSD"] == 2
        ok = h["STATUS"].data == 0
        # the CLI's whole-image call and the API's row chunks: the same draws per pixel
        np.testing.assert_array_equal(h["LOGT_EM_ERR"].data[ok], res.logt_err[ok].astype(np.float32))
        assert h["EM_ERR"].data.shape == h[0].data.shape and h["EM_TOTAL_ERR"].header["BUNIT"] == "cm-5"
        assert np.isnan(h["LOGT_EM_ERR"].data[~ok]).all()
        assert ((h["MC_FEAS"].data[ok] >= 0) & (h["MC_FEAS"].data[ok] <= 1)).all()
    with pytest.raises(ValueError, match="n_samples"):
        BasisPursuit().solve(np.ones((6, 2)), exptime=1.0, n_samples=-1)
