"""The dual simplex on hard, degenerate LPs (not just AIA-like ones) vs SciPy HiGHS."""

from __future__ import annotations

import numpy as np
import pytest
from dem_helpers import highs
from fastinv import _core


def _solve_both(D, y, sigma, tolfac=1.0):
    s = _core.dem.BasisPursuit(D, tolfacs=[tolfac], min_total=0.0, warm_start=False)
    coeffs, status, _, obj, iters, _, _, _ = s.solve(y, sigma, 1)
    return coeffs, status, obj, iters


@pytest.mark.parametrize("seed", range(4))
def test_degenerate_random_lps(seed):
    rng = np.random.default_rng(100 + seed)
    m, n, npix = int(rng.integers(2, 9)), int(rng.integers(5, 60)), 150
    D = rng.uniform(0, 1, (m, n)) * (rng.uniform(size=(m, n)) < 0.7)
    D[:, 1] = D[:, 0]  # duplicated column
    D[:, 2] = 0.0  # empty column
    D[:, 3] = 2 * D[:, 4]  # parallel columns
    x0 = rng.uniform(0, 1, (n, npix)) * (rng.uniform(size=(n, npix)) < 3 / n)
    y = D @ x0  # exactly representable: degenerate vertices
    y[:, ::3] += rng.normal(0, 0.3, (m, (npix + 2) // 3))  # some infeasible ones
    sigma = rng.uniform(0, 0.05, (m, npix))
    sigma[:, ::5] = 0.0  # equality rows (lo = up)
    coeffs, status, obj, iters = _solve_both(D, y, sigma)
    assert set(np.unique(status)) <= {0, 2}
    for i in range(npix):
        st, fun, _ = highs(D, y[:, i], sigma[:, i])
        assert (st == 0) == (status[i] == 0), (i, st, status[i])
        if st == 0:
            assert obj[i] == pytest.approx(fun, rel=1e-6, abs=1e-9)
            model = D @ coeffs[:, i]
            yc = np.maximum(y[:, i], 0)
            scale = max(yc.max() + sigma[:, i].max(), 1e-300)
            assert np.all(model <= yc + sigma[:, i] + 1e-9 * scale)
            assert np.all(model >= np.maximum(yc - sigma[:, i], 0) - 1e-9 * scale)


def test_iteration_limit_gives_not_converged():
    rng = np.random.default_rng(5)
    D = rng.uniform(0.1, 1, (6, 84))
    y = D @ rng.uniform(0, 1, (84, 20))
    s = _core.dem.BasisPursuit(D, tolfacs=[1.0], max_iterations=1, warm_start=False)
    _, status, _, obj, iters, _, _, _ = s.solve(y, np.full_like(y, 1e-3), 1)
    assert np.all(status == 3) and np.all(obj == 0) and np.all(iters <= 1)


def test_wide_dynamic_range_vs_highs():
    """AIA dictionary, pixels whose coefficients span 1e-3..1e4 and whose relative errors
    span 1e-4..1e-1 (tight and loose bands): same verdicts and objectives as HiGHS."""
    from fastinv.dem import BasisPursuit

    bp = BasisPursuit(adaptive=False, warm_start=False)
    rng = np.random.default_rng(11)
    n = 600
    x = np.zeros((84, n))
    for i in range(n):
        k = rng.choice(84, rng.integers(1, 4), replace=False)
        x[k, i] = 10 ** rng.uniform(-3, 4, k.size)
    y = (bp.dictionary @ x) * 10 ** rng.uniform(-0.3, 0.3, (6, n))
    sigma = np.abs(y) * 10 ** rng.uniform(-4, -1, y.shape) + 1e-6
    r = bp.solve(y, sigma=sigma)
    assert 0.1 < np.mean(r.status == 0) < 0.9  # both verdicts well represented
    for i in np.flatnonzero(r.status != 11):  # 11: sum(y) < 0.01 DN/s, by design
        st, fun, _ = highs(bp.dictionary, y[:, i], 1.4 * sigma[:, i])
        assert (st == 0) == (r.status[i] == 0), i
        if st == 0:
            assert r.objective[i] == pytest.approx(fun, rel=1e-6)
