"""The AIA error model vs the formula of aia_bp_estimate_error (V3 table), coded here anew."""

from __future__ import annotations

import numpy as np
import pytest
from fastinv.dem import aia_error

DNPERPHT = np.array([1.975, 1.473, 1.122, 0.962, 0.880, 0.576])[:, None]
COMPRESS = np.array([26.196, 18.797, 14.400, 12.759, 11.670, 7.350])[:, None]


def reference(counts, n):
    c = np.maximum(counts, 0)
    shot = np.sqrt(c * DNPERPHT) / np.sqrt(n)
    dark = 0.18
    read = 1.15 / np.sqrt(n)
    quant = 0.288819 / np.sqrt(n)
    comp = np.where(c < 25, 0.0, np.maximum(shot / COMPRESS, 0.288819) / np.sqrt(n))
    return np.sqrt(shot**2 + dark**2 + read**2 + quant**2 + comp**2)


@pytest.mark.parametrize("n", [1.0, 4.0, 16.0])
def test_matches_formula(n):
    rng = np.random.default_rng(3)
    counts = np.concatenate(
        [10 ** rng.uniform(-1, 5, (6, 500)), np.full((6, 3), 24.999), np.full((6, 3), 25.0), -np.ones((6, 2))], axis=1
    )
    np.testing.assert_allclose(aia_error(counts, n), reference(counts, n), rtol=1e-14)


def test_known_value():
    # 171 A, 1000 DN, n = 1: shot = sqrt(1122) = 33.496; compress = 33.496/14.4 = 2.326
    s = aia_error(np.full((6, 1), 1000.0))[2, 0]
    expect = np.sqrt(1122 + 0.18**2 + 1.15**2 + 0.288819**2 + (np.sqrt(1122) / 14.4) ** 2)
    assert s == pytest.approx(expect, rel=1e-14)
    assert s == pytest.approx(33.60, abs=0.01)


def test_bad_arguments():
    with pytest.raises(ValueError, match="shape"):
        aia_error(np.ones((5, 3)))
    with pytest.raises(ValueError, match="n_sample"):
        aia_error(np.ones((6, 3)), 0.5)


def test_quantity_units():
    import astropy.units as u

    c = np.full((6, 2), 100.0)
    np.testing.assert_array_equal(aia_error(c * u.DN), aia_error(c))
    with pytest.raises(ValueError, match="DN"):
        aia_error(c * u.m)
