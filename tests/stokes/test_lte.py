"""LTE synthesis: the formal solver against the analytic Milne-Eddington solution (constant
line properties, source function linear in tau; references: tests/stokes/reference/me_numpy.py,
scipy wofz, and fastinv's MilneEddington), exact symmetries, API behaviour, atmospheres."""

import numpy as np
import pytest

pytest.importorskip("scipy")

from fastinv import _core  # noqa: E402
from fastinv.stokes import LTE, Instrument, MilneEddington, atmospheres  # noqa: E402
from reference import me_numpy  # noqa: E402

C_KMS = 299792.458


def _me_params(rng):
    return dict(
        B=rng.uniform(0, 3000),
        inclination=rng.uniform(0, 180),
        azimuth=rng.uniform(0, 180),
        vlos=rng.uniform(-4, 4),
        doppler_width=rng.uniform(20, 50),
        damping=rng.uniform(0, 0.8),
        eta0=rng.uniform(1, 40),
        S0=rng.uniform(0, 0.4),
        S1=rng.uniform(0.4, 1.0),
    )


@pytest.mark.parametrize("line", ["FeI_6301", "FeI_6302"])
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("mu", [1.0, 0.4])
def test_formal_solver_reproduces_milne_eddington(line, seed, mu):
    # Constant K and S = S0 + S1 tau_c on the LTE code's kind of grid (log tau step 0.1):
    # the DELO-linear solution must equal the Unno-Rachkovsky one (issue: to 1e-3 of I_c).
    rng = np.random.default_rng(seed)
    p = _me_params(rng)
    lam0 = 6301.5012 if line == "FeI_6301" else 6302.4936
    wl = lam0 + np.linspace(-0.6, 0.6, 121)
    lt = np.arange(-7.0, 2.5 + 1e-9, 0.1)
    S = p["S0"] + p["S1"] * 10**lt
    ours = _core._testing.lte_formal_prescribed(
        line,
        wl,
        lt,
        S,
        p["eta0"],
        p["doppler_width"] * 1e-3,
        p["damping"],
        p["B"],
        p["inclination"],
        p["azimuth"],
        p["vlos"],
        mu,
    )
    ic = p["S0"] + mu * p["S1"]
    ref = me_numpy.synthesize(p, wl, mu=mu, lines=(line,), ratios=[1.0])[0]
    assert np.max(np.abs(ours - ref)) / ic < 1e-3
    me = MilneEddington(lines=(line,), wavelength=wl).synthesize({k: np.array([v]) for k, v in p.items()}, mu=mu)[0]
    assert np.max(np.abs(ours - me)) / ic < 1e-3


@pytest.fixture(scope="module")
def lte():
    return LTE(wavelength=np.arange(6300.6, 6303.2 + 1e-9, 0.01))


def test_no_field_no_polarisation(lte):
    out = lte.synthesize(atmospheres.falc(vlos=1.0))
    assert np.all(out[0, 1:] == 0.0)
    assert np.all(np.isfinite(out)) and 0.2 < out[0, 0].min() < 0.5


def test_transverse_field_no_V_and_longitudinal_no_QU(lte):
    t = lte.synthesize(atmospheres.falc(B=1500, inclination=90, azimuth=30))[0]
    assert np.max(np.abs(t[3])) < 1e-12 * np.max(np.abs(t[1]))
    z = lte.synthesize(atmospheres.falc(B=1500, inclination=0))[0]
    assert np.max(np.abs(z[1:3])) < 1e-12 * np.max(np.abs(z[3]))


def test_azimuth_rotates_linear_polarisation(lte):
    # Rotating the field by chi rotates (Q, U) by 2 chi (a frame rotation): exact.
    kw = dict(B=1200, inclination=60)
    a = lte.synthesize(atmospheres.falc(azimuth=0.0, **kw))[0]
    chi = np.deg2rad(35.0)
    b = lte.synthesize(atmospheres.falc(azimuth=35.0, **kw))[0]
    q = a[1] * np.cos(2 * chi) - a[2] * np.sin(2 * chi)
    u = a[1] * np.sin(2 * chi) + a[2] * np.cos(2 * chi)
    np.testing.assert_allclose(b[1], q, atol=1e-10)
    np.testing.assert_allclose(b[2], u, atol=1e-10)
    np.testing.assert_allclose(b[[0, 3]], a[[0, 3]], atol=1e-12)


def test_reversed_field_flips_V_and_faraday_rotated_U(lte):
    # B -> -B at azimuth 0: eta_V and rho_V change sign, so V and the U that magneto-optical
    # (Faraday) rotation creates from Q change sign; I and Q do not.
    a = lte.synthesize(atmospheres.falc(B=800, inclination=40, azimuth=0))[0]
    b = lte.synthesize(atmospheres.falc(B=800, inclination=140, azimuth=0))[0]
    np.testing.assert_allclose(b[[2, 3]], -a[[2, 3]], atol=1e-12)
    np.testing.assert_allclose(b[[0, 1]], a[[0, 1]], atol=1e-12)
    assert np.max(np.abs(a[2])) > 1e-4  # the magneto-optical U is really there


def test_velocity_is_a_doppler_shift():
    w = np.arange(6301.2, 6301.8 + 1e-9, 0.002)
    lte = LTE(lines=("FeI_6301",), wavelength=w)
    v = 2.0
    a = lte.synthesize(atmospheres.hsra())[0, 0]
    b = lte.synthesize(atmospheres.hsra(vlos=v))[0, 0]
    # b(lambda) = a(lambda - lambda0 v / c): compare on the shifted grid by interpolation
    shift = 6301.5012 * v / C_KMS
    inner = (w > 6301.3) & (w < 6301.7)
    np.testing.assert_allclose(b[inner], np.interp(w[inner] - shift, w, a), atol=2e-4)


def test_depth_grid_convergence(lte):
    # The 55-point grid (step 0.1) is within 3e-3 I_c of a 5x finer one (2nd-order solver).
    a = atmospheres.falc(B=1000, inclination=30, azimuth=20)
    fine = np.arange(-4.0, 1.4 + 1e-9, 0.02)
    b = atmospheres.Atmospheres(
        fine,
        temperature=np.interp(fine, a.log_tau, a.temperature[0]),
        vmic=np.interp(fine, a.log_tau, a.vmic[0]),
        B=1000,
        inclination=30,
        azimuth=20,
        vlos=0,
    )
    assert np.max(np.abs(lte.synthesize(a) - lte.synthesize(b))) < 3e-3


def test_limb_darkening_and_normalisation(lte):
    a = atmospheres.hsra()
    i1 = lte.synthesize(a, mu=1.0, normalize=False)[0, 0, 0]
    i5 = lte.synthesize(a, mu=0.5, normalize=False)[0, 0, 0]
    # Solar limb darkening at 630 nm: I(0.5)/I(1) ~ 0.77-0.80 (Neckel & Labs 1994)
    assert 0.72 < i5 / i1 < 0.84
    # normalised HSRA continuum is 1 by construction, at every mu (the grid's most
    # continuum-like point is within the lines' far wings: 2e-3)
    for mu in (1.0, 0.5):
        norm = lte.synthesize(a, mu=mu)[0]
        assert norm[0].max() == pytest.approx(1.0, abs=2e-3)
        absolute = lte.synthesize(a, mu=mu, normalize=False)[0]
        np.testing.assert_allclose(norm * lte.quiet_sun_continuum(mu), absolute, rtol=1e-12)
    with pytest.raises(ValueError):
        lte.synthesize(a, mu=0.0)


def test_bad_atmospheres_get_a_status_not_an_exception(lte):
    atm = atmospheres.random(4, seed=3)
    atm.temperature[1, 10] = np.nan
    atm.B[2, 0] = -5.0
    out, status = lte.synthesize(atm, return_status=True)
    assert list(status) == [0, 1, 1, 0]
    assert np.all(np.isnan(out[1])) and np.all(np.isnan(out[2]))
    assert np.all(np.isfinite(out[[0, 3]]))
    good = lte.synthesize(atm[0])
    np.testing.assert_array_equal(good[0], out[0])


def test_threads_do_not_change_results(lte):
    atm = atmospheres.random(6, seed=11)
    np.testing.assert_array_equal(lte.synthesize(atm, threads=1), lte.synthesize(atm, threads=2))


def test_instrument_degradation_and_noise():
    lte = LTE(instrument=Instrument.hinode_sp(noise=1e-3))
    atm = atmospheres.falc(B=500, inclination=30)
    a = lte.synthesize(atm, seed=5)
    b = lte.synthesize(atm, seed=5)
    clean = lte.synthesize(atm, add_noise=False)
    assert a.shape == (1, 4, 112)
    np.testing.assert_array_equal(a, b)
    assert 0.5e-3 < np.std(a - clean) < 1.5e-3


def test_input_validation():
    with pytest.raises(ValueError):
        LTE(lines=("NoSuchLine",))
    with pytest.raises(ValueError):
        LTE(wavelength=[6302.0, 6301.0])
    with pytest.raises(ValueError):
        atmospheres.Atmospheres([0, 1, 0.5], temperature=5000, vmic=0, B=0, inclination=0, azimuth=0, vlos=0)
    with pytest.raises(TypeError):
        LTE().synthesize([1, 2, 3])


def test_atmosphere_models_and_random_generator():
    h, f = atmospheres.hsra(), atmospheres.falc()
    assert h.log_tau[0] == pytest.approx(-4.0) and h.log_tau[-1] == pytest.approx(1.4)
    assert h.temperature_at(0.0)[0] == pytest.approx(6390.0)  # Gingerich et al. 1971
    assert h.temperature_at(-2.0)[0] == pytest.approx(4660.0)
    assert 6400 < f.temperature_at(0.0)[0] < 6700  # FAL-C, Fontenla et al. 1993
    r1, r2 = atmospheres.random(50, seed=42), atmospheres.random(50, seed=42)
    np.testing.assert_array_equal(r1.temperature, r2.temperature)
    np.testing.assert_array_equal(r1.B, r2.B)
    assert not np.array_equal(r1.temperature, atmospheres.random(50, seed=43).temperature)
    R = atmospheres.RANDOM_RANGES
    assert r1.B.min() >= R["B"][0] and r1.B.max() <= R["B"][1]
    assert np.abs(r1.vlos).max() <= 6.0 and r1.vmic.min() >= 0
    assert np.all((r1.inclination >= 0) & (r1.inclination <= 180))
    assert np.all(r1.temperature >= R["T_min"])
    nodes = r1.at_nodes()
    assert nodes["temperature"].shape == (50, 7)
    # the perturbation around its base model is smooth (degree-4 Legendre series): its second
    # differences on the 0.1-dex grid stay below 30 K, the unperturbed models' jump far more
    d2 = [np.abs(np.diff(r1.temperature - base.temperature, n=2, axis=1)).max(axis=1) for base in (h, f)]
    assert np.all(np.minimum(*d2) < 30.0)
    assert r1.temperature.std(axis=0).max() > 100.0  # and it does perturb


def test_random_atmospheres_give_physical_stokes():
    # Polarisation degree <= 1 and positive intensity for every random atmosphere, including
    # strong fields and large velocities (a property of any correct polarised solution).
    atm = atmospheres.random(200, seed=21, ranges=dict(B=(0.0, 5000.0), vlos=(-10.0, 10.0)))
    out, status = LTE().synthesize(atm, return_status=True)
    assert np.all(status == 0)
    assert np.all(out[:, 0] > 0)
    assert np.all(np.sqrt(np.sum(out[:, 1:] ** 2, axis=1)) <= out[:, 0] * (1 + 1e-9))


def test_umbra_model():
    u = atmospheres.maltby_m(B=2500, inclination=20)
    assert u.log_tau[-1] == pytest.approx(1.2) and u.temperature_at(0.0)[0] == pytest.approx(4040)
    out = LTE().synthesize(u)[0]
    # an umbra is much darker than the quiet Sun at 630 nm (observed contrast ~0.1-0.3)
    assert 0.05 < out[0].max() < 0.35
    assert np.max(np.abs(out[3])) > 0.01


def test_astropy_units_and_sir_order():
    import astropy.units as u

    h = atmospheres.hsra()
    # SIR files list the bottom first: the same atmosphere given bottom-first, in other units
    flipped = atmospheres.Atmospheres(
        h.log_tau[::-1],
        temperature=h.temperature[0, ::-1] * u.K,
        vmic=(h.vmic[0, ::-1] * u.km / u.s).to(u.m / u.s),
        B=0.1 * u.T,
        inclination=(np.pi / 4) * u.rad,
        azimuth=0 * u.deg,
        vlos=500 * u.m / u.s,
    )
    ref = atmospheres.hsra(B=1000, inclination=45, vlos=0.5)
    for k in ("temperature", "vmic", "B", "inclination", "vlos"):
        np.testing.assert_allclose(getattr(flipped, k), getattr(ref, k), rtol=1e-12)
    lte = LTE(wavelength=np.linspace(630.1, 630.3, 50) * u.nm)
    np.testing.assert_allclose(lte.synthesize(flipped), lte.synthesize(ref), rtol=1e-12)
    with pytest.raises(ValueError):
        atmospheres.hsra(B=3 * u.km)


def test_continuum_and_planck_interpolation_is_exact_enough():
    # Grids up to 30 A interpolate kappa_c and B_lambda across the grid; adding a far point
    # (span > 30 A) switches to exact per-wavelength values: the shared wavelengths agree.
    w = np.arange(6300.8, 6303.2, 0.02)
    atm = atmospheres.falc(B=700, inclination=50, azimuth=15, vlos=0.8)
    a = LTE(wavelength=w).synthesize(atm, normalize=False)[0]
    b = LTE(wavelength=np.append(w, 6340.0)).synthesize(atm, normalize=False)[0][:, :-1]
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-6 * a[0].max())
