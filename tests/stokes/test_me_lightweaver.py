"""The ME sign conventions against lightweaver (an independent code), run on a grey
atmosphere: field toward the observer -> V > 0 in the blue lobe; a transverse field at
azimuth chi gives Q ~ -cos 2chi and U ~ -sin 2chi at line centre; positive vlos is a
redshift. Uses fastinv/stokes/lightweaver_reference.py (the LTE branch's strictly-LTE
lightweaver recipe, with fastinv's conventions on its inputs); skipped without lightweaver."""

import numpy as np
import pytest

pytest.importorskip("lightweaver")
from fastinv.stokes import MilneEddington  # noqa: E402
from fastinv.stokes.synthesis import lightweaver_reference as lw_ref  # noqa: E402

pytestmark = pytest.mark.slow

LOG_TAU = np.arange(-4.0, 1.41, 0.1)
T_GREY = 5770.0 * (0.75 * (10.0**LOG_TAU + 2.0 / 3.0)) ** 0.25  # grey atmosphere, Teff 5770 K
WL = np.concatenate([6302.4936 + np.linspace(-0.3, 0.3, 41)])
CORE = 20


def lightweaver(B, gamma, chi, vlos=0.0):
    n = LOG_TAU.size
    return lw_ref.lightweaver_stokes(
        LOG_TAU, T_GREY, np.full(n, 1.0), np.full(n, B), np.full(n, gamma), np.full(n, chi), np.full(n, vlos), WL
    )


def me(B, gamma, chi, vlos=0.0):
    m = MilneEddington(lines=("FeI_6302",), wavelength=WL)
    return m.synthesize(
        dict(B=B, inclination=gamma, azimuth=chi, vlos=vlos, doppler_width=30.0, damping=0.3, eta0=6.0, S0=0.2, S1=0.8)
    )[0]


def blue_lobe(v):
    blue = v[: CORE - 2]
    return blue[np.argmax(np.abs(blue))]


@pytest.mark.parametrize("gamma", [30.0, 150.0])
def test_circular_polarisation_sign(gamma):
    a, b = lightweaver(1000.0, gamma, 0.0), me(1000.0, gamma, 0.0)
    assert abs(blue_lobe(a[3])) > 1e-3 * a[0, 0]
    assert np.sign(blue_lobe(a[3])) == np.sign(blue_lobe(b[3])) == np.sign(np.cos(np.deg2rad(gamma)))


@pytest.mark.parametrize("chi", [0.0, 30.0, 60.0, 120.0])
def test_linear_polarisation_signs(chi):
    a, b = lightweaver(1500.0, 90.0, chi), me(1500.0, 90.0, chi)
    for k, trig in ((1, np.cos), (2, np.sin)):
        if abs(trig(np.deg2rad(2 * chi))) < 0.1:
            continue  # (that Stokes parameter vanishes)
        expect = -np.sign(trig(np.deg2rad(2 * chi)))
        assert np.sign(a[k, CORE]) == np.sign(b[k, CORE]) == expect, (k, a[k, CORE], b[k, CORE])


def test_velocity_sign():
    a, b = lightweaver(0.0, 0.0, 0.0, vlos=2.0), me(0.0, 0.0, 0.0, vlos=2.0)
    assert WL[np.argmin(a[0])] > 6302.4936 + 0.02 and WL[np.argmin(b[0])] > 6302.4936 + 0.02
