"""Instrument degradation: Gaussian LSF against the analytic Gaussian-on-Gaussian
convolution, resampling, presets, noise statistics, and convergence of the ME synthesis
on the instrument's fine grid."""

import numpy as np
import pytest
from fastinv.stokes import Instrument, MilneEddington


def test_presets():
    sp = Instrument.hinode_sp()
    assert sp.wavelength.size == 112
    np.testing.assert_allclose(np.diff(sp.wavelength), 0.0215, rtol=1e-9)
    assert sp.wavelength.mean() == pytest.approx(6302.08)
    assert sp.lsf_fwhm == pytest.approx(30.0) and sp.noise == 1e-3
    vi = Instrument.visp()
    assert vi.wavelength.size == 980
    np.testing.assert_allclose(np.diff(vi.wavelength), 0.01625, rtol=1e-9)
    assert vi.lsf_fwhm == pytest.approx(6302.0 / 180000 * 1e3)
    # synthesis grid covers the output with the LSF's reach and is uniform
    g = sp.synthesis_grid()
    assert g[0] < sp.wavelength[0] - 0.06 and g[-1] > sp.wavelength[-1] + 0.06
    np.testing.assert_allclose(np.diff(g), 0.0215 / sp.oversample, rtol=1e-9)


@pytest.mark.parametrize("make", [Instrument.hinode_sp, Instrument.visp])
def test_gaussian_lsf_on_gaussian_line(make):
    inst = make(noise=0.0)
    g = inst.synthesis_grid()
    lc, s, d = 6301.7, 0.045, 0.6  # a Gaussian absorption line, sigma 45 mA
    fine = 1.0 - d * np.exp(-0.5 * ((g - lc) / s) ** 2)
    sig = inst.lsf_fwhm * 1e-3 / (2 * np.sqrt(2 * np.log(2)))
    st = np.hypot(s, sig)
    expect = 1.0 - d * s / st * np.exp(-0.5 * ((inst.wavelength - lc) / st) ** 2)
    got = inst.degrade(fine[None, :])[0]
    assert np.abs(got - expect).max() < 2e-6
    # a constant stays constant, any batch shape works
    np.testing.assert_allclose(inst.degrade(np.full((2, 3, g.size), 0.7)), 0.7, atol=1e-14)


def test_callable_lsf_matches_gaussian():
    sp = Instrument.hinode_sp(noise=0.0)
    sig = 30e-3 / (2 * np.sqrt(2 * np.log(2)))
    custom = Instrument(sp.wavelength, lsf=lambda d: np.exp(-0.5 * (d / sig) ** 2), lsf_halfwidth=5 * sig, noise=0.0)
    g = custom.synthesis_grid()
    np.testing.assert_allclose(sp.synthesis_grid(), g, atol=1e-9)
    x = np.sin(g * 40.0) + 2.0
    np.testing.assert_allclose(custom.degrade(x), sp.degrade(x), atol=1e-12)
    # a grid padded for macroturbulence holds the same points (aligned), plus more
    gp = sp.padded_for(3.0).synthesis_grid()
    i0 = int(np.argmin(np.abs(gp - g[0])))
    assert gp.size > g.size and np.abs(gp[i0 : i0 + g.size] - g).max() < 1e-9


def test_noise_is_seeded_and_has_the_right_level():
    sp = Instrument.hinode_sp(noise=2e-3)
    clean = np.ones((400, 4, 112))
    a = sp.add_noise(clean, seed=11, continuum=np.full(400, 0.5))
    b = sp.add_noise(clean, seed=11, continuum=np.full(400, 0.5))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, sp.add_noise(clean, seed=12))
    assert np.std(a - clean) == pytest.approx(1e-3, rel=0.01)  # 2e-3 * I_c = 0.5
    assert abs(np.mean(a - clean)) < 1e-5


def test_me_with_instrument():
    sp = Instrument.hinode_sp()
    me = MilneEddington(instrument=sp)
    p = dict(
        B=[1500.0, 0.0],
        inclination=[45.0, 0.0],
        azimuth=30.0,
        vlos=0.5,
        doppler_width=30.0,
        damping=0.2,
        eta0=12.0,
        S0=0.2,
        S1=0.8,
        vmac=0.0,
    )
    clean = me.synthesize(p, add_noise=False)
    assert clean.shape == (2, 4, 112)
    # same as synthesising on the fine grid and degrading (no macroturbulence)
    fine = MilneEddington(wavelength=sp.synthesis_grid()).synthesize(p)
    np.testing.assert_allclose(clean, sp.degrade(fine), atol=1e-13)
    # with macroturbulence: the Gaussian fast path (vmac folded into the LSF) against the
    # general path (vmac smoothing on the fine grid, then the banded LSF operator)
    p["vmac"] = 1.0
    fast = me.synthesize(p, add_noise=False)
    sig = 30e-3 / (2 * np.sqrt(2 * np.log(2)))
    general = Instrument(sp.wavelength, lsf=lambda d: np.exp(-0.5 * (d / sig) ** 2), lsf_halfwidth=5 * sig, noise=0.0)
    assert general.gaussian_sampling() is None and sp.gaussian_sampling() is not None
    slow = MilneEddington(instrument=general).synthesize(p)
    assert np.abs(fast - slow).max() < 2e-5
    p["vmac"] = 0.0
    noisy = me.synthesize(p, seed=3)
    np.testing.assert_array_equal(noisy, me.synthesize(p, seed=3))
    assert 0.5e-3 < np.std(noisy - clean) < 1.5e-3
    # the instrument smooths: shallower line, same continuum
    raw = MilneEddington().synthesize(p)
    assert clean[1, 0].min() > raw[1, 0].min()
    # resampling onto a user grid with the instrument's LSF
    me2 = MilneEddington(wavelength=np.linspace(6301.3, 6302.7, 57), instrument=sp)
    assert me2.synthesize(p, add_noise=False).shape == (2, 4, 57)


@pytest.mark.parametrize("make", [Instrument.hinode_sp, Instrument.visp])
def test_default_oversampling_is_converged(make):
    rng = np.random.default_rng(5)
    n = 100
    p = dict(
        B=rng.uniform(0, 4000, n),
        inclination=rng.uniform(0, 180, n),
        azimuth=rng.uniform(0, 180, n),
        vlos=rng.uniform(-5, 5, n),
        doppler_width=rng.uniform(15, 60, n),
        damping=rng.uniform(0, 1, n),
        eta0=rng.uniform(0.5, 40, n),
        S0=0.2,
        S1=0.8,
        vmac=rng.uniform(0, 3, n),
    )
    a = MilneEddington(instrument=make(noise=0.0)).synthesize(p)
    b = MilneEddington(instrument=make(noise=0.0, oversample=16)).synthesize(p)
    assert np.abs(a - b).max() < 2e-5  # vs a noise of 1e-3


def test_bad_instruments():
    with pytest.raises(ValueError):
        Instrument([6302.0, 6301.0], 30.0)
    with pytest.raises(ValueError):
        Instrument([6302.0], None)
    with pytest.raises(ValueError):
        Instrument([6302.0, 6302.1], -1.0)
    with pytest.raises(ValueError):
        Instrument([6302.0, 6302.1], 30.0, noise=-1)
    sp = Instrument.hinode_sp()
    with pytest.raises(ValueError, match="synthesis_grid"):
        sp.degrade(np.ones(10))
    with pytest.raises(ValueError, match="instrument"):
        MilneEddington().synthesize(
            dict(B=0, inclination=0, azimuth=0, vlos=0, doppler_width=30, damping=0.1, eta0=5, S0=0.2, S1=0.8),
            add_noise=True,
        )


@pytest.mark.parametrize("kind", ["gaussian", "callable"])
def test_models_move_the_instrument_to_their_wavelengths(kind):
    """``wavelength=`` with ``instrument=``: the same operator as the instrument built on that grid."""
    from fastinv.stokes import LTE

    sp = Instrument.hinode_sp(noise=2e-3, oversample=3)
    sig = 0.03 / 2.3548
    if kind == "callable":
        sp = Instrument(sp.wavelength, lsf=lambda d: np.exp(-0.5 * (d / sig) ** 2), lsf_halfwidth=5 * sig, oversample=3)
    wl = np.linspace(6301.3, 6302.7, 57)
    direct = (
        Instrument(wl, sp.lsf_fwhm, noise=sp.noise, oversample=3, name=sp.name)
        if kind == "gaussian"
        else Instrument(wl, lsf=sp._lsf, lsf_halfwidth=5 * sig, noise=sp.noise, oversample=3, name=sp.name)
    )
    for model in (MilneEddington(wavelength=wl, instrument=sp), LTE(wavelength=wl, instrument=sp)):
        inst = model.instrument
        assert inst.noise == sp.noise and inst.oversample == 3 and inst.name == sp.name
        np.testing.assert_array_equal(inst.wavelength, wl)
        for got, want in zip(inst.operator(), direct.operator()):
            np.testing.assert_array_equal(got, want)
