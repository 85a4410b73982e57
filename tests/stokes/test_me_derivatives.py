"""Analytic Milne-Eddington derivatives (the inversion's Jacobian) vs central finite
differences of the forward model, for every parameter, both Fe I 630 lines, mu < 1, with
and without an unmagnetised filling-factor component, macroturbulence and an instrument:
Hinode's Gaussian LSF (vmac widens it), a non-Gaussian LSF and none (a separate smoothing pass
for vmac, on a uniform and on a non-uniform grid)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from fastinv.stokes import Instrument, MilneEddington
from fastinv.stokes.synthesis.milne_eddington import ME_PARAMETERS, hinode_sp_wavelength

NAMES = ME_PARAMETERS  # the order of profile_and_jacobian's rows
# Central-difference steps: large enough that the ~1e-9 absolute seams of the Voigt
# approximations (near/far region switch) stay below the tolerance, small enough for the
# O(h^2) truncation error.
STEPS = (1.0, 0.03, 0.03, 1e-3, 0.03, 3e-4, 1e-2, 1e-4, 1e-4, 1e-4, 1e-3)
# max |FD - analytic| / max |analytic| per parameter (measured: <= 1e-6)
TOLERANCE = 2e-5

PARAMS = np.array(
    [
        [1200.0, 35.0, 40.0, 0.8, 32.0, 0.3, 12.0, 0.25, 0.9, 0.7, 0.8],
        [300.0, 120.0, 160.0, -1.5, 25.0, 0.8, 5.0, 0.1, 1.0, 1.0, 2.1],
        [2500.0, 80.0, 95.0, 2.2, 40.0, 0.05, 30.0, 0.4, 0.6, 0.3, 1.5],
    ]
)


def _model(instrument: str | None) -> MilneEddington:
    if instrument == "hinode":
        return MilneEddington(instrument=Instrument.hinode_sp())
    wl = hinode_sp_wavelength()
    if instrument == "lorentzian":  # a non-Gaussian LSF (banded operator) + smoothing for vmac
        lsf = Instrument(wl, lsf=lambda d: 1.0 / (1.0 + (d / 0.012) ** 2), lsf_halfwidth=0.1, vmac_max=3.0)
        return MilneEddington(instrument=lsf)
    if instrument == "nonuniform":  # no instrument; the smoothing's non-uniform-grid branch
        return MilneEddington(wavelength=wl + 0.004 * np.sin(np.arange(wl.size)))
    return MilneEddington()


@pytest.mark.parametrize("instrument", [None, "hinode", "lorentzian", "nonuniform"])
def test_jacobian_matches_central_differences(instrument):
    me = _model(instrument)
    mu = 0.7
    prof, jac = me._me.profile_and_jacobian(PARAMS, mu)
    d = {k: PARAMS[:, i] for i, k in enumerate(NAMES)}
    np.testing.assert_allclose(prof, me.synthesize(d, mu, add_noise=False), rtol=0, atol=1e-13)
    for k, name in enumerate(NAMES):
        h = STEPS[k]
        up, down = PARAMS.copy(), PARAMS.copy()
        up[:, k] += h
        down[:, k] -= h
        if name == "filling_factor":  # f = 1 is the upper limit: one-sided there
            up[:, k] = np.minimum(up[:, k], 1.0)
        fd = (me._me.profile_and_jacobian(up, mu)[0] - me._me.profile_and_jacobian(down, mu)[0]) / (
            (up[:, k] - down[:, k])[:, None, None]
        )
        an = jac[:, k]
        if name == "filling_factor":  # linear in f: exact for any step
            np.testing.assert_allclose(fd, an, rtol=0, atol=1e-9 * np.abs(an).max())
            continue
        err = np.abs(fd - an).max() / np.abs(an).max()
        assert err < TOLERANCE, f"{name}: relative error {err:.2e}"
        # every Stokes parameter that depends on this one is checked, not only the largest
        for s in range(4):
            scale = np.abs(an[:, s]).max()
            if scale > 1e-6:
                assert np.abs(fd[:, s] - an[:, s]).max() / scale < 10 * TOLERANCE, (name, s)


# The float32 kernel (the inversion's default Jacobian; docs/stokes-me-inversion.md, "Float32
# Jacobian kernel") vs the float64 analytic Jacobian above: max |float32 - float64| /
# max |float64| per parameter (measured: <= 2e-6; profiles <= 1.1e-7 absolute at I_c = 1).
TOLERANCE_F32 = 1e-5


@pytest.mark.parametrize("instrument", [None, "hinode", "lorentzian", "nonuniform"])
def test_float32_jacobian_matches_float64_and_central_differences(instrument):
    me = _model(instrument)
    mu = 0.7
    prof64, jac64 = me._me.profile_and_jacobian(PARAMS, mu)
    prof32, jac32 = me._me.profile_and_jacobian(PARAMS, mu, precision="float32")
    assert np.abs(prof32 - prof64).max() < 1e-6
    for k, name in enumerate(NAMES):
        scale = np.abs(jac64[:, k]).max()
        assert np.abs(jac32[:, k] - jac64[:, k]).max() / scale < TOLERANCE_F32, name
        if name in ("S0", "filling_factor"):
            continue
        h = STEPS[k]
        up, down = PARAMS.copy(), PARAMS.copy()
        up[:, k] += h
        down[:, k] -= h
        fd = (me._me.profile_and_jacobian(up, mu)[0] - me._me.profile_and_jacobian(down, mu)[0]) / (2 * h)
        assert np.abs(fd - jac32[:, k]).max() / scale < TOLERANCE + TOLERANCE_F32, name


def test_float32_jacobian_on_every_isa():
    """generic (SSE2), AVX2 and AVX-512 builds of the float32 kernel, each vs float64."""
    me = _model("hinode")
    ref = me._me.profile_and_jacobian(PARAMS, 0.7)[1]
    code = (
        "import json, numpy as np; from fastinv import _core; from fastinv.stokes import Instrument, MilneEddington;"
        "me = MilneEddington(instrument=Instrument.hinode_sp());"
        f"p = np.array({PARAMS.tolist()});"
        "j = me._me.profile_and_jacobian(p, 0.7, precision='float32')[1];"
        "print(json.dumps([_core.stokes.faddeeva_isa(), j.ravel().tolist()]))"
    )
    used = set()
    for isa in ("generic", "avx2", "avx512"):
        env = dict(os.environ, FASTINV_ISA=isa)
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        name, data = json.loads(out.stdout)
        used.add(name)
        jac = np.array(data).reshape(ref.shape)
        for k in range(len(NAMES)):
            scale = np.abs(ref[:, k]).max()
            assert np.abs(jac[:, k] - ref[:, k]).max() / scale < TOLERANCE_F32, (name, NAMES[k])
    assert "generic" in used


def test_precision_name_is_checked():
    with pytest.raises(ValueError, match="precision"):
        _model(None)._me.profile_and_jacobian(PARAMS, 0.7, precision="float16")
