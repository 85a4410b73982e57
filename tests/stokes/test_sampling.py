"""Random ME parameter sampler: reproducible, inside the documented ranges, isotropic
inclination (uniform in cos), log-uniform eta0, S0 + S1 = 1; samples synthesise cleanly."""

import numpy as np
import pytest
from fastinv.stokes import MilneEddington
from fastinv.stokes.synthesis.sampling import ME_RANGES, sample_me_parameters


def test_reproducible_and_in_range():
    a = sample_me_parameters(5000, seed=3)
    b = sample_me_parameters(5000, seed=3)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["B"], sample_me_parameters(5000, seed=4)["B"])
    for k, (lo, hi, _) in ME_RANGES.items():
        assert a[k].min() >= lo and a[k].max() <= hi, k
    np.testing.assert_allclose(a["S0"] + a["S1"], 1.0)
    # isotropic: cos(inclination) uniform on [-1, 1] (mean 0, variance 1/3)
    c = np.cos(np.deg2rad(a["inclination"]))
    assert abs(c.mean()) < 0.03 and abs(c.var() - 1 / 3) < 0.02
    # log-uniform eta0: log uniform between log 1 and log 60
    le = np.log(a["eta0"])
    assert abs(le.mean() - np.log(60) / 2) < 0.05


def test_overrides_and_errors():
    p = sample_me_parameters(10, seed=0, ranges={"B": (500.0, 500.0, "uniform")})
    assert np.all(p["B"] == 500.0)
    with pytest.raises(ValueError):
        sample_me_parameters(3, ranges={"Bogus": (0, 1, "uniform")})
    with pytest.raises(ValueError):
        sample_me_parameters(3, ranges={"B": (2, 1, "uniform")})


def test_samples_synthesise():
    s, status = MilneEddington().synthesize(sample_me_parameters(200, seed=1), return_status=True)
    assert np.all(status == 0) and np.isfinite(s).all()
