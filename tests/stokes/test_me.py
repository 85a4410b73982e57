"""Milne-Eddington synthesis: against an independent NumPy implementation
(tests/stokes/reference/me_numpy.py: scipy wofz, sympy 3j, and a direct 4x4 solve), analytic
limits (B = 0, gamma = 90 deg, weak field) and the sign conventions shared with
lightweaver (stokes.md addendum: V > 0 in the blue lobe for a field toward the observer;
Q ~ -cos 2chi, U ~ -sin 2chi at the core of a transverse-field line)."""

import numpy as np
import pytest

pytest.importorskip("scipy")
pytest.importorskip("sympy")

from fastinv.status import ME_STATUS  # noqa: E402
from fastinv.stokes import MilneEddington  # noqa: E402
from fastinv.stokes.synthesis.lines import get_line  # noqa: E402
from reference import me_numpy  # noqa: E402

BASE = dict(B=0.0, inclination=0.0, azimuth=0.0, vlos=0.0, doppler_width=30.0, damping=0.2, eta0=8.0, S0=0.3, S1=0.7)


def random_params(n, seed=0, extras=True):
    rng = np.random.default_rng(seed)
    p = dict(
        B=rng.uniform(0, 4000, n),
        inclination=rng.uniform(0, 180, n),
        azimuth=rng.uniform(0, 180, n),
        vlos=rng.uniform(-5, 5, n),
        doppler_width=rng.uniform(15, 60, n),
        damping=rng.uniform(0, 1.0, n),
        eta0=rng.uniform(0.5, 40, n),
        S0=rng.uniform(0, 0.5, n),
        S1=rng.uniform(0.3, 1, n),
    )
    if extras:
        p["filling_factor"] = rng.uniform(0, 1, n)
        p["vmac"] = np.where(rng.uniform(size=n) < 0.5, 0.0, rng.uniform(0, 3, n))
    return p


@pytest.mark.parametrize("mu", [1.0, 0.43])
def test_matches_numpy_closed_form(mu):
    me = MilneEddington()
    p = random_params(300, seed=1)
    ours = me.synthesize(p, mu=mu)
    ref = me_numpy.synthesize(p, me.wavelength, mu=mu, method="closed")
    assert ours.shape == (300, 4, 112)
    assert np.abs(ours - ref).max() <= 1e-7  # (issue: 1e-6; measured ~1e-8)


def test_matches_direct_4x4_solution():
    """The closed form (ours) against solving K x = e0 -- no shared algebra."""
    wl = np.linspace(6300.8, 6303.2, 301)
    me = MilneEddington(wavelength=wl)
    p = random_params(60, seed=2, extras=False)
    ours = me.synthesize(p, mu=0.8)
    ref = me_numpy.synthesize(p, wl, mu=0.8, method="solve")
    assert np.abs(ours - ref).max() <= 1e-7  # (issue: 1e-6; measured ~1e-8)


def test_zero_field_is_unpolarised():
    me = MilneEddington()
    p = random_params(50, seed=3)
    p["B"] = np.zeros(50)
    s = me.synthesize(p)
    assert np.abs(s[:, 1:]).max() < 1e-14
    assert s[:, 0].min() < (p["S0"] + p["S1"]).max()  # a line is there


def test_transverse_field_has_no_V():
    me = MilneEddington()
    p = random_params(50, seed=4)
    p["inclination"] = np.full(50, 90.0)
    s = me.synthesize(p)
    assert np.abs(s[:, 3]).max() < 1e-14
    assert np.abs(s[:, 1:3]).max() > 1e-3


@pytest.mark.parametrize("line", ["FeI_6301", "FeI_6302"])
@pytest.mark.parametrize("gamma", [20.0, 130.0])
def test_weak_field_limit(line, gamma):
    """V = -4.67e-13 lambda0^2 g_eff B cos(gamma) dI/dlambda (first order in B)."""
    L = get_line(line)
    wl = L.wavelength + np.linspace(-0.5, 0.5, 2001)
    me = MilneEddington(lines=(line,), wavelength=wl)
    B = 20.0
    p = dict(BASE, B=B, inclination=gamma, damping=0.05, eta0=5.0)
    s = me.synthesize(p)[0]
    i0 = me.synthesize(dict(p, B=0.0))[0, 0]
    dIdl = np.gradient(i0, wl)
    v_wfa = -4.6686e-13 * L.wavelength**2 * L.g_eff * B * np.cos(np.deg2rad(gamma)) * dIdl
    assert np.abs(s[3] - v_wfa).max() <= 0.01 * np.abs(v_wfa).max()
    # sign: field toward the observer (gamma < 90) -> V > 0 on the blue side of the core
    blue = wl < L.wavelength - 0.02
    lobe = s[3][blue][np.argmax(np.abs(s[3][blue]))]
    assert np.sign(lobe) == np.sign(np.cos(np.deg2rad(gamma)))


def test_sign_conventions_strong_field():
    """lightweaver's conventions (stokes.md addendum), with a 2 kG field on 6302.5."""
    L = get_line("FeI_6302")
    wl = L.wavelength + np.linspace(-0.4, 0.4, 801)
    me = MilneEddington(lines=("FeI_6302",), wavelength=wl)
    core = np.argmin(np.abs(wl - L.wavelength))
    # longitudinal toward the observer: V > 0 in the blue lobe, < 0 in the red lobe
    v = me.synthesize(dict(BASE, B=2000.0, inclination=0.0))[0, 3]
    assert v[wl < L.wavelength].max() > 0.05 and v[wl < L.wavelength].min() > -1e-12
    assert v[wl > L.wavelength].min() < -0.05
    # transverse: Q ~ -cos 2chi, U ~ -sin 2chi at the line core
    for chi, sq, su in [(0.0, -1, 0), (45.0, 0, -1), (90.0, 1, 0), (135.0, 0, 1)]:
        s = me.synthesize(dict(BASE, B=2000.0, inclination=90.0, azimuth=chi))[0]
        q, u = s[1, core], s[2, core]
        big = max(abs(q), abs(u))
        assert big > 0.01
        if sq:
            assert np.sign(q) == sq and abs(u) < 1e-9 * big + 1e-12
        if su:
            assert np.sign(u) == su and abs(q) < 1e-9 * big + 1e-12
    # positive vlos is a redshift
    i = me.synthesize(dict(BASE, vlos=2.0))[0, 0]
    shift = wl[np.argmin(i)] - L.wavelength
    assert shift == pytest.approx(L.wavelength * 2.0 / 299792.458, abs=1.5e-3)


def test_filling_factor_mixes_with_unmagnetised_atmosphere():
    me = MilneEddington()
    p = dict(BASE, B=1500.0, inclination=40.0, azimuth=20.0)
    mag = me.synthesize(p)[0]
    nonmag = me.synthesize(dict(p, B=0.0))[0]
    for f in (0.0, 0.3, 1.0):
        s = me.synthesize(dict(p, filling_factor=f))[0]
        np.testing.assert_allclose(s[0], f * mag[0] + (1 - f) * nonmag[0], atol=1e-13)
        np.testing.assert_allclose(s[1:], f * mag[1:], atol=1e-13)


def test_macroturbulence_keeps_equivalent_width_and_continuum():
    wl = np.linspace(6300.5, 6303.5, 1501)
    me = MilneEddington(wavelength=wl)
    p = dict(BASE, B=800.0, inclination=30.0)
    a = me.synthesize(p)[0]
    b = me.synthesize(dict(p, vmac=2.0))[0]
    ew = lambda s: np.trapezoid(1.0 - s[0], wl)  # noqa: E731
    assert ew(b) == pytest.approx(ew(a), rel=1e-5)  # (edge renormalisation: not exact)
    assert b[0].min() > a[0].min()  # shallower
    assert b[0, 0] == pytest.approx(a[0, 0], abs=1e-4)  # far wing ~unchanged (one-sided kernel at the edge)


def test_units_and_structured_arrays():
    u = pytest.importorskip("astropy.units")
    me = MilneEddington()
    p = dict(BASE, B=1200.0, inclination=35.0, azimuth=60.0, vlos=1.3, vmac=0.7)
    ref = me.synthesize(p)
    q = dict(
        p,
        B=0.12 * u.T,
        inclination=np.deg2rad(35.0) * u.rad,
        vlos=1300 * u.m / u.s,
        doppler_width=0.030 * u.AA,
        vmac=700 * u.m / u.s,
    )
    np.testing.assert_allclose(me.synthesize(q), ref, rtol=1e-12, atol=1e-14)
    arr = np.zeros(3, dtype=[(k, "f8") for k in p])
    for k, v in p.items():
        arr[k] = v
    np.testing.assert_allclose(me.synthesize(arr), np.repeat(ref, 3, axis=0), atol=0)
    with pytest.raises(ValueError, match="convert"):
        me.synthesize(dict(p, B=3 * u.km))


def test_bad_input_is_flagged_per_profile():
    me = MilneEddington()
    p = random_params(6, seed=5)
    good = me.synthesize(p)
    p["doppler_width"][1] = -1.0
    p["B"][3] = np.nan
    p["filling_factor"][4] = 1.5
    s, status = me.synthesize(p, return_status=True)
    assert list(status) == [0, 1, 0, 1, 1, 0]
    assert np.isnan(s[[1, 3, 4]]).all()
    np.testing.assert_array_equal(s[[0, 2, 5]], good[[0, 2, 5]])
    with pytest.raises(ValueError, match="mu"):
        me.synthesize(p, mu=0.0)
    with pytest.raises(ValueError, match="missing"):
        me.synthesize({"B": 1.0})
    with pytest.raises(ValueError, match="unknown"):
        me.synthesize(dict(BASE, Bfield=1.0))
    with pytest.raises(ValueError, match="same length"):
        me.synthesize(dict(BASE, B=[1.0, 2.0], eta0=[1.0, 2.0, 3.0]))
    with pytest.raises(ValueError, match="increasing"):
        MilneEddington(wavelength=[6302.0, 6301.0])
    with pytest.raises(ValueError, match="unknown spectral line"):
        MilneEddington(lines=("FeI_9999",))
    with pytest.raises(ValueError, match="Angstrom"):
        MilneEddington(wavelength=[630.1, 630.2])  # nm by mistake
    # nm work through astropy, and an empty batch is fine
    u = pytest.importorskip("astropy.units")
    a = MilneEddington(wavelength=[630.14, 630.16] * u.nm).synthesize(dict(BASE, B=100.0))
    b = MilneEddington(wavelength=[6301.4, 6301.6]).synthesize(dict(BASE, B=100.0))
    np.testing.assert_allclose(a, b, atol=1e-9)  # (nm -> A conversion rounding)
    assert me.synthesize(dict(BASE, B=np.zeros(0))).shape == (0, 4, 112)


def test_overflowing_profile_gets_a_failure_status():
    # eta0 = 1e308 is a valid parameter whose profile overflows: never status 0 with NaN
    me = MilneEddington()
    p = dict(BASE, eta0=[8.0, 1e308, 1e200, 1e5])
    s, status = me.synthesize(p, return_status=True)
    assert ME_STATUS[2].startswith("non-finite")
    finite = np.isfinite(s).all(axis=(1, 2))
    np.testing.assert_array_equal(status, np.where(finite, 0, 2))
    assert list(status[:3]) == [0, 2, 2] and np.isnan(s[1:3]).all()
    # the finite neighbours are those of a batch without the overflowing rows
    np.testing.assert_array_equal(s[[0, 3]], me.synthesize(dict(BASE, eta0=[8.0, 1e5])))


def test_threads_do_not_change_results():
    me = MilneEddington()
    p = random_params(500, seed=6)
    np.testing.assert_array_equal(me.synthesize(p, threads=1), me.synthesize(p, threads=2))


def test_continuum_and_mu():
    me = MilneEddington(wavelength=[6280.0, 6281.0])  # 20 A from the lines: continuum
    for mu in (1.0, 0.5, 0.1):
        s = me.synthesize(dict(BASE, S0=0.25, S1=0.75), mu=mu)[0]
        np.testing.assert_allclose(s[0], 0.25 + mu * 0.75, atol=1e-5)


def test_isa_kernels_agree():
    """The generic, AVX2 and AVX-512 builds of the kernels give the same profiles."""
    import json
    import os
    import subprocess
    import sys

    from fastinv import _core

    code = (
        "import json, numpy as np; from fastinv.stokes import MilneEddington; "
        "from fastinv import _core; import sys; sys.path.insert(0, %r); "
        "from test_me import random_params; "
        "s = MilneEddington().synthesize(random_params(40, seed=9)); "
        "print(json.dumps([_core.stokes.faddeeva_isa(), s.ravel().tolist()]))"
        % os.path.dirname(os.path.abspath(__file__))
    )
    results = {}
    for isa in ("generic", "avx2", "avx512"):
        env = dict(os.environ, FASTINV_ISA=isa)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        used, data = json.loads(out.stdout)
        results[used] = np.array(data)
    assert "generic" in results and _core.stokes.faddeeva_isa() in results
    ref = results["generic"]
    for isa, s in results.items():
        assert np.abs(s - ref).max() <= 1e-12, isa
