"""BasisPursuit API: basis/dictionary vs their formulas, options, per-pixel status, errors."""

from __future__ import annotations

import numpy as np
import pytest
from dem_helpers import EXPTIME, synthetic_pixels
from fastinv import _core
from fastinv.dem import DEEPEM_LOGT, BasisPursuit, load_response


def test_basis_and_dictionary_formulas(bp):
    lt = bp.logt
    assert lt.size == 21 and lt[0] == 5.5 and abs(lt[-1] - 7.5) < 1e-12
    B = bp.basis
    assert B.shape == (84, 21)
    np.testing.assert_array_equal(B[:21], np.eye(21))
    for b, w in enumerate((0.1, 0.2, 0.6), start=1):
        g = np.exp(-(((lt[None, :] - lt[:, None]) / w) ** 2))
        g[g < 0.04] = 0.0
        np.testing.assert_allclose(B[21 * b : 21 * (b + 1)], g, rtol=1e-15, atol=0)
    K = load_response("aia_v10_eve").at(lt)
    np.testing.assert_allclose(bp.dictionary, K @ B.T * 1e26, rtol=1e-13)
    # the check table of the research note: 171 A at log T 5.9, 193 A at 6.2 (V10 EVE)
    assert bp.response_on_grid[2, 4] == pytest.approx(1.210e-24, rel=1e-3)
    assert bp.response_on_grid[3, 7] == pytest.approx(6.255e-25, rel=1e-3)


def test_deepem_grid_and_custom_widths():
    b = BasisPursuit(logt=DEEPEM_LOGT, widths=(0.1, 0.2))
    assert b.basis.shape == (54, 18) and b.dictionary.shape == (6, 54)
    y, dem = synthetic_pixels(b, 50, seed=2, noise=False)
    r = b.solve(y, exptime=EXPTIME)
    assert r.em.shape == (18, 50) and np.all(r.status == 0)


def test_user_response_array_and_sigma(bp):
    k = bp.response_on_grid * 1.0
    b2 = BasisPursuit(response=k)
    np.testing.assert_allclose(b2.dictionary, bp.dictionary, rtol=1e-15)
    y, _ = synthetic_pixels(bp, 100, seed=4)
    sig = bp.sigma(y, EXPTIME)
    r1 = bp.solve(y, exptime=EXPTIME)
    r2 = b2.solve(y, sigma=sig)
    np.testing.assert_array_equal(r1.status, r2.status)
    np.testing.assert_allclose(r1.objective, r2.objective, rtol=1e-12)
    with pytest.raises(ValueError, match="nT"):
        BasisPursuit(response=k[:, :5])


def test_shapes_threads_and_quantities(bp):
    import astropy.units as u

    y, _ = synthetic_pixels(bp, 60, seed=5)
    cube = y.reshape(6, 6, 10)
    r1 = bp.solve(cube, exptime=EXPTIME, threads=1)
    r2 = bp.solve(cube * (u.DN / u.s), exptime=EXPTIME * u.s, threads=2)
    assert r1.em.shape == (21, 6, 10) and r1.model.shape == (6, 6, 10) and r1.status.shape == (6, 10)
    for name in ("em", "coeffs", "objective", "tolfac"):
        np.testing.assert_array_equal(getattr(r1, name), getattr(r2, name))
    # em = B^T coeffs * 1e26, model = D coeffs, chi2 from the model
    np.testing.assert_allclose(r1.em, np.einsum("kt,k...->t...", bp.basis, r1.coeffs) * 1e26)
    np.testing.assert_allclose(r1.model, np.einsum("ck,k...->c...", bp.dictionary, r1.coeffs))
    sig = bp.sigma(cube, EXPTIME)
    chi2 = (((r1.model - cube) / sig) ** 2).sum(axis=0)
    np.testing.assert_allclose(r1.chi2[r1.ok], chi2[r1.ok], rtol=1e-10)
    with pytest.raises(ValueError, match="DN/s"):
        bp.solve(cube * u.m, exptime=EXPTIME)


def test_single_pixel_shapes(bp):
    em = np.zeros(21)
    em[8] = 1e27
    r = bp.solve(bp.response_on_grid @ em, exptime=[2.9, 2.9, 2.0, 2.0, 2.9, 2.9])
    assert r.em.shape == (21,) and r.status.shape == () and int(r.status) == 0
    assert abs(float(r.logt_mean) - 6.3) < 0.05


def test_per_pixel_status_codes(bp):
    y, _ = synthetic_pixels(bp, 8, seed=6)
    y[:, 1] = 0.001  # sum < 0.01 DN/s -> no counts
    y[2, 2] = np.nan  # bad input
    y[0, 3] = np.inf  # bad input
    y[:, 4] = -5.0  # negatives are set to 0 -> no counts
    sig = bp.sigma(np.nan_to_num(y, posinf=0), EXPTIME)
    sig[1, 5] = -1.0  # negative sigma -> bad input
    sig[3, 6] = np.nan
    y[:, 7] = [1e3, 0, 0, 0, 0, 1e3]  # 94 and 335 bright, the rest dark: infeasible
    sig[:, 7] = 1e-3
    r = bp.solve(y, sigma=sig)
    assert list(r.status) == [0, 11, 12, 12, 11, 12, 12, 2]
    bad = r.status != 0
    assert np.all(r.coeffs[:, bad] == 0) and np.all(r.em[:, bad] == 0)
    assert np.all(np.isnan(r.chi2[bad]))
    assert r.tolfac[7] == pytest.approx(1.4 * 2.25)


def test_invalid_arguments(bp):
    with pytest.raises(ValueError, match="shape"):
        bp.solve(np.ones((5, 3)), exptime=2.0)
    with pytest.raises(ValueError, match="exptime"):
        bp.solve(np.ones((6, 3)))
    with pytest.raises(ValueError, match="exptime"):
        bp.solve(np.ones((6, 3)), exptime=0.0)
    with pytest.raises(ValueError):
        BasisPursuit(widths=(0.1, -0.2))
    with pytest.raises(ValueError):
        BasisPursuit(tolfac=0)
    with pytest.raises(ValueError):
        BasisPursuit(logt=[5.5])
    with pytest.raises(ValueError, match="increasing"):
        _core.dem.basis(np.array([5.5, 5.4]), [0.0])
    with pytest.raises(ValueError, match="NaN"):
        _core.dem.BasisPursuit(np.full((6, 3), np.nan))
    with pytest.raises(ValueError, match="tolfac"):
        _core.dem.BasisPursuit(np.ones((6, 3)), tolfacs=[])
    s = _core.dem.BasisPursuit(np.ones((6, 3)))
    with pytest.raises(ValueError, match="nchan"):
        s.solve(np.ones((5, 2)), np.ones((5, 2)))
    with pytest.raises(TypeError):
        s.solve(np.ones(6), np.ones(6))
    assert s.solve(np.ones((6, 2)), np.ones((6, 2)))[6].shape == (0, 2)  # no basis: no em
    with pytest.raises(ValueError, match="ncoef"):
        s.set_basis(np.ones((4, 5)), 1.0)
    with pytest.raises(ValueError, match="em_unit"):
        s.set_basis(np.ones((3, 5)), 0.0)


def test_warm_start_same_optima_and_thread_independent():
    """Warm starts (default) reach the same verdicts and optimal objectives as cold starts on
    real image pixels, and the result does not depend on the thread count."""
    from fastinv import datasets
    from fastinv.dem.io import read_aia

    obs = read_aia(datasets.aia_flare_files())
    warm = BasisPursuit(warm_start=True)
    cold = BasisPursuit(warm_start=False)
    rw1 = warm.solve(obs.data, exptime=obs.exptime, threads=1)
    rw2 = warm.solve(obs.data, exptime=obs.exptime, threads=2)
    rc = cold.solve(obs.data, exptime=obs.exptime, threads=2)
    np.testing.assert_array_equal(rw1.status, rc.status)
    np.testing.assert_array_equal(rw1.tolfac, rc.tolfac)
    np.testing.assert_allclose(rw1.objective, rc.objective, rtol=1e-9)
    for name in ("coeffs", "status", "objective", "iterations"):
        np.testing.assert_array_equal(getattr(rw1, name), getattr(rw2, name))
    assert rw1.iterations.sum() < rc.iterations.sum()
