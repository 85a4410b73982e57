"""LTE equation of state, continuum opacity and hydrostatic equilibrium against analytic
limits (Saha for hydrogen), a published model (HSRA's tabulated P_e, P_g) and an independent
code (lightweaver's Wittmann EOS and continuum, a port of NICOLE/SIR's)."""

import numpy as np
import pytest
from fastinv import _core
from fastinv.stokes import atmospheres
from scipy import constants as sc


def _saha_hydrogen(T):
    """n(H II) n_e / n(H I) for U(H I) = 2, U(H II) = 1 (CGS), from CODATA constants."""
    k, h, me = sc.k * 1e7, sc.h * 1e7, sc.m_e * 1e3
    chi = 13.598434 * sc.e * 1e7
    return (2 * np.pi * me * k * T / h**2) ** 1.5 * np.exp(-chi / (k * T))


@pytest.mark.parametrize("T,nH", [(8000.0, 1e14), (9000.0, 1e13), (10000.0, 1e15), (12000.0, 1e16)])
def test_hydrogen_saha_limit(T, nH):
    # Hot (but below He ionisation) and dilute: hydrogen gives > 99.9 % of the electrons, so n_e = x n_H with
    # x^2 / (1 - x) = Phi_H / n_H (pure-hydrogen Saha).
    s = _core._testing.lte_eos_from_nh(T, nH)
    r = _saha_hydrogen(T) / nH
    x = 0.5 * (-r + np.sqrt(r * r + 4 * r))
    assert s["ne"] == pytest.approx(x * nH, rel=2e-3)
    assert s["nHII"] / s["nH"] == pytest.approx(x, rel=2e-3)


def test_partition_functions_hydrogen_and_limits():
    for T in (3000.0, 6000.0, 9000.0):
        assert _core._testing.lte_partition(1, 0, T) == pytest.approx(2.0, rel=1e-4)
        assert _core._testing.lte_partition(1, 1, T) == pytest.approx(1.0, rel=1e-12)
    # Fe I / Fe II near 5000 K: ground terms a5D (g = 25) and a6D (g = 30) plus low levels.
    assert 25.0 < _core._testing.lte_partition(26, 0, 5000.0) < 35.0
    assert 30.0 < _core._testing.lte_partition(26, 1, 5000.0) < 50.0
    with pytest.raises(ValueError):
        _core._testing.lte_partition(3, 0, 5000.0)  # lithium: not in the table


def test_gas_pressure_is_consistent():
    for T, Pg in ((4500.0, 1e3), (6000.0, 1e5), (9000.0, 2e5)):
        s = _core._testing.lte_eos_from_pg(T, Pg)
        info = _core._testing.lte_eos_info()
        k = sc.k * 1e7
        assert (s["nH"] * info["particles_per_H"] + s["ne"]) * k * T == pytest.approx(Pg, rel=1e-10)
        assert s["nHI"] + s["nHII"] + s["nHm"] == pytest.approx(s["nH"], rel=1e-12)
    with pytest.raises(ValueError):
        _core._testing.lte_eos_from_pg(-5.0, 1e4)


@pytest.fixture(scope="module")
def wittmann():
    pytest.importorskip("lightweaver")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lightweaver.wittmann import Wittmann
    return Wittmann()


@pytest.mark.parametrize("T", [4200.0, 5000.0, 6000.0, 7000.0, 8500.0])
@pytest.mark.parametrize("Pg", [1e3, 1e4, 1e5])
def test_eos_and_continuum_vs_wittmann(wittmann, T, Pg):
    s = _core._testing.lte_eos_from_pg(T, Pg)
    assert s["Pe"] == pytest.approx(wittmann.pe_from_pg(T, Pg), rel=0.04)
    k500 = _core._testing.lte_continuum(T, Pg, 5000.0)["total"]
    k630 = _core._testing.lte_continuum(T, Pg, 6302.0)["total"]
    w500 = wittmann.cont_opacity(T, Pg, s["Pe"], np.array([5000.0])).item()
    w630 = wittmann.cont_opacity(T, Pg, s["Pe"], np.array([6302.0])).item()
    assert k500 == pytest.approx(w500, rel=0.08)
    assert k630 == pytest.approx(w630, rel=0.08)
    # what line formation depends on: the 630/500 nm continuum ratio
    assert k630 / k500 == pytest.approx(w630 / w500, rel=0.03)


def test_continuum_is_dominated_by_hminus_in_the_photosphere():
    p = _core._testing.lte_continuum(5800.0, 1e5, 6302.0)
    assert (p["hminus_bf"] + p["hminus_ff"]) / p["total"] > 0.85
    assert all(p[k] >= 0 for k in ("hminus_bf", "hminus_ff", "h_bf", "h_ff", "thomson", "rayleigh"))


def test_hydrostatic_equilibrium_vs_hsra_table():
    # HSRA's P_e, P_g were computed by SIR's EOS/opacities with older abundances; ours must
    # agree in P_e (what the H- continuum and Fe ionisation depend on) to a few per cent.
    t = atmospheres.hsra_table()
    r = _core._testing.lte_hydrostatic(t["log_tau"], t["temperature"])
    assert r["ok"]
    deep = t["log_tau"] >= -3.0  # above, the two top boundary conditions differ
    np.testing.assert_allclose(r["Pe"][deep], t["Pe"][deep], rtol=0.05)
    np.testing.assert_allclose(r["Pg"][deep], t["Pg"][deep], rtol=0.12)
    # and hydrostatic equilibrium itself: d ln P / d ln tau = g tau rho / (kappa_500 P)
    lnt = t["log_tau"] * np.log(10)
    lhs = np.gradient(np.log(r["Pg"]), lnt)
    rhs = 2.7398e4 * 10 ** t["log_tau"] * r["rho"] / (r["kappa500"] * r["Pg"])
    np.testing.assert_allclose(lhs[1:-1], rhs[1:-1], rtol=0.02)


def test_hydrostatic_failure_is_flagged_not_raised():
    lt = np.linspace(-4, 1, 20)
    T = np.full(20, 5000.0)
    T[3] = np.nan
    r = _core._testing.lte_hydrostatic(lt, T)
    assert not r["ok"] and np.all(np.isnan(r["Pg"]))
    with pytest.raises(ValueError):
        _core._testing.lte_hydrostatic(lt[::-1].copy(), np.full(20, 5000.0))  # wrong order: caller error
