"""LTE synthesis against lightweaver (an independent NLTE/LTE code; strictly LTE here) on
FAL-C for the four cases of issue 5: B = 0, 1 kG along the line of sight, 1 kG transverse,
100 G at 45 deg. Requirements: I/I_c within 2 % at every wavelength, V and Q peak
amplitudes within 5 %, line-core positions within 2 mA. The hydrostatic equilibrium / EOS
is compared too (lightweaver's Wittmann EOS on the same T(tau_500))."""

import numpy as np
import pytest

pytest.importorskip("lightweaver")

from fastinv import _core  # noqa: E402
from fastinv.stokes import LTE, atmospheres  # noqa: E402
from fastinv.stokes.synthesis import lightweaver_reference as lwref  # noqa: E402

WAVE = np.round(np.arange(6300.60, 6303.20 + 1e-9, 0.01), 2)  # air, A
LINES = {"FeI_6301": (6301.5012, slice(None, None)), "FeI_6302": (6302.4936, None)}
CASES = {  # B [G], inclination [deg], azimuth [deg]
    "B=0": (0.0, 0.0, 0.0),
    "1kG_los": (1000.0, 0.0, 0.0),
    "1kG_transverse": (1000.0, 90.0, 0.0),
    "100G_45deg": (100.0, 45.0, 0.0),
}
WINDOWS = {"FeI_6301": (6301.1, 6301.9), "FeI_6302": (6302.1, 6302.9)}


def _ptop():
    a = atmospheres.falc()
    return float(_core._testing.lte_hydrostatic(a.log_tau, a.temperature[0])["Pg"][0])


@pytest.fixture(scope="module")
def profiles():
    atm0 = atmospheres.falc()
    ptop = _ptop()
    lte = LTE(wavelength=WAVE)
    out = {}
    for name, (B, inc, azi) in CASES.items():
        atm = atmospheres.falc(B=B, inclination=inc, azimuth=azi)
        ours = lte.synthesize(atm, normalize=False)[0]
        ref = lwref.lightweaver_stokes(
            atm0.log_tau,
            atm0.temperature[0],
            atm0.vmic[0],
            np.full(atm0.n_depth, B),
            np.full(atm0.n_depth, inc),
            np.full(atm0.n_depth, azi),
            np.zeros(atm0.n_depth),
            WAVE,
            ptop_dyn=ptop,
        )
        # Each code normalised by its own continuum (first point, 0.9 A from 6301.5).
        out[name] = (ours / ours[0, 0], ref / ref[0, 0])
    return out


def _core_position(wave, intensity, window):
    """Centroid of the line depression 1 - I within the window (robust for split lines)."""
    m = (wave >= window[0]) & (wave <= window[1])
    depth = np.clip(1.0 - intensity[m], 0.0, None)
    return float(np.sum(wave[m] * depth) / np.sum(depth))


@pytest.mark.parametrize("case", list(CASES))
def test_intensity_within_2_percent(profiles, case):
    ours, ref = profiles[case]
    assert np.max(np.abs(ours[0] - ref[0])) < 0.02


@pytest.mark.parametrize("case", list(CASES))
def test_line_core_positions_within_2_mA(profiles, case):
    ours, ref = profiles[case]
    for name, window in WINDOWS.items():
        a = _core_position(WAVE, ours[0], window)
        b = _core_position(WAVE, ref[0], window)
        assert abs(a - b) < 2e-3, (name, a, b)
    if CASES[case][0] == 0.0:  # unsplit line: the intensity minimum (parabola) too
        for name, window in WINDOWS.items():
            m = np.nonzero((WAVE >= window[0]) & (WAVE <= window[1]))[0]
            for prof in (ours[0], ref[0]):
                i = m[np.argmin(prof[m])]
                y0, y1, y2 = prof[i - 1 : i + 2]
                x = WAVE[i] + 0.01 * 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
                nominal = 6301.5012 if name == "FeI_6301" else 6302.4936
                assert abs(x - nominal) < 2e-3, (name, x)


@pytest.mark.parametrize("case", list(CASES))
def test_polarisation_peaks_within_5_percent(profiles, case):
    ours, ref = profiles[case]
    B, inc, _ = CASES[case]
    for name, window in WINDOWS.items():
        m = (WAVE >= window[0]) & (WAVE <= window[1])
        for s, label in ((1, "Q"), (3, "V")):
            pa, pb = np.max(np.abs(ours[s][m])), np.max(np.abs(ref[s][m]))
            expect_signal = B > 0 and ((label == "V" and inc < 90) or (label == "Q" and inc > 0))
            if not expect_signal:
                assert pa < 1e-6 and pb < 1e-6, (name, label, pa, pb)
                continue
            assert abs(pa / pb - 1) < 0.05, (name, label, pa, pb)
            # same sign at the peak (conventions match lightweaver's)
            ia = np.argmax(np.abs(ours[s][m]))
            assert np.sign(ours[s][m][ia]) == np.sign(ref[s][m][ia]), (name, label)


def test_hydrostatic_equilibrium_matches_lightweaver():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import lightweaver as lw
    a = atmospheres.falc()
    ours = _core._testing.lte_hydrostatic(a.log_tau, a.temperature[0])
    ref = lw.Atmosphere.make_1d(
        scale=lw.ScaleType.Tau500, depthScale=10**a.log_tau, temperature=a.temperature[0], Ptop=ours["Pg"][0] * 0.1
    )
    nh = ours["rho"] / _core._testing.lte_eos_info()["mass_per_H"]
    np.testing.assert_allclose(ours["ne"], ref.ne * 1e-6, rtol=0.025)
    np.testing.assert_allclose(nh, ref.nHTot * 1e-6, rtol=0.025)


@pytest.mark.parametrize("index", [0, 2])
def test_depth_dependent_atmosphere(index):
    # Random atmosphere (perturbed T, B / inclination / azimuth / v_LOS varying with depth):
    # exercises velocity and field gradients and magneto-optical effects. Beyond the issue's
    # FAL-C cases, so a slightly looser intensity bound (measured 1.7-1.8 %; the systematic
    # part is lightweaver's Fe II partition function from its RH atom, 7 % above Kurucz's).
    a = atmospheres.random(4, seed=2, ranges=dict(B=(0.0, 2500.0)))[index]
    ptop = float(_core._testing.lte_hydrostatic(a.log_tau, a.temperature[0])["Pg"][0])
    ours = LTE(wavelength=WAVE).synthesize(a, normalize=False)[0]
    ref = lwref.lightweaver_stokes(
        a.log_tau, a.temperature[0], a.vmic[0], a.B[0], a.inclination[0], a.azimuth[0], a.vlos[0], WAVE, ptop_dyn=ptop
    )
    ours, ref = ours / ours[0, 0], ref / ref[0, 0]
    assert np.max(np.abs(ours[0] - ref[0])) < 0.025
    for s in (1, 2, 3):
        pa, pb = np.max(np.abs(ours[s])), np.max(np.abs(ref[s]))
        assert abs(pa / pb - 1) < 0.05, (s, pa, pb)
        assert np.corrcoef(ours[s], ref[s])[0, 1] > 0.995
