"""Reference Stokes profiles of the Fe I 630 nm pair from lightweaver (independent code;
needs `pip install lightweaver`, used by tests and by fastinv.stokes.inversion.evaluate).

lightweaver (Osborne & Milic 2021, ApJ 917, 14; PyPI ``lightweaver``, MIT) has no Fe I 6301/6302
in its model atoms, so we add them to a copy of its RH ``Fe_atom``: the four fine-structure
levels at the end of the Fe I block, before Fe II (lower levels at their NIST energies, upper
levels placed so that the line centres fall on fastinv's air wavelengths), and two Voigt
lines with the same log gf, classical radiative damping, quadratic Stark and ABO (Barklem)
van der Waals parameters fastinv uses. Its
LTE populations come from the atom's own level list, its EOS / hydrostatic equilibrium from its
Wittmann (NICOLE/SIR) port, its background opacities from its own tables, its formal solver is
DELO-Bezier. We make the run strictly LTE by setting J to the Planck function before the
full-Stokes formal solution.

Units on the lightweaver side: B in tesla, angles in radians, velocities in m/s with positive
= toward the observer (blue shift), vacuum wavelengths in nm.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from ..._optional import require

_A0_CM2 = 0.529177210903e-8**2  # Bohr radius squared [cm^2]: lightweaver wants sigma in a0^2
# NIST ASD level energies [cm^-1] (Fe I) of the lower levels z5P°2, z5P°1 (the upper e5D2,
# e5D0 are 45333.875, 45595.081; we place them from the line wavelengths instead, see below).
_E_Z5P2, _E_Z5P1 = 29469.024, 29732.736


def _classical_gamma(lambda_air_A: float) -> float:
    # 8 pi^2 e^2 / (3 m_e c lambda^2) in s^-1 (CGS), as fastinv uses.
    e2, me, c = 2.307077552e-19, 9.1093837015e-28, 2.99792458e10
    lam = lambda_air_A * 1e-8
    return 8 * np.pi**2 * e2 / (3 * me * c * lam**2)


def _fe_atom_with_630(
    centers_air_A=(6301.5012, 6302.4936), loggf=(-0.718, -1.165), abo=((2.352e-14, 0.243), (2.398e-14, 0.240))
):
    from fractions import Fraction

    from lightweaver.atomic_model import (
        AtomicLevel,
        AtomicModel,
        LinearCoreExpWings,
        LineBroadening,
        LineType,
        VoigtLine,
    )
    from lightweaver.broadening import QuadraticStarkBroadening, RadiativeBroadening, VdwBarklem
    from lightweaver.rh_atoms import Fe_atom
    from lightweaver.utils import air_to_vac

    # Upper-level energies put the line centres exactly at fastinv's air wavelengths (NIST's
    # energies alone give 6301.4995 / 6302.4951 A: -1.7 / +1.5 mA from VALD's).
    vac_A = air_to_vac(np.asarray(centers_air_A) / 10.0) * 10.0
    e_up = (_E_Z5P2 + 1e8 / vac_A[0], _E_Z5P1 + 1e8 / vac_A[1])
    gamma_rad = (_classical_gamma(centers_air_A[0]), _classical_gamma(centers_air_A[1]))
    fe = Fe_atom()
    levels = list(fe.levels)
    n_fe1 = sum(1 for lev in levels if lev.stage == 0)
    new = [
        AtomicLevel(E=_E_Z5P2, g=5, label="FE I Z5P2", stage=0, J=Fraction(2), L=1, S=Fraction(2)),
        AtomicLevel(E=_E_Z5P1, g=3, label="FE I Z5P1", stage=0, J=Fraction(1), L=1, S=Fraction(2)),
        AtomicLevel(E=e_up[0], g=5, label="FE I E5D2", stage=0, J=Fraction(2), L=2, S=Fraction(2)),
        AtomicLevel(E=e_up[1], g=1, label="FE I E5D0", stage=0, J=Fraction(0), L=2, S=Fraction(2)),
    ]
    levels = levels[:n_fe1] + new + levels[n_fe1:]
    shift = lambda k: k + 4 if k >= n_fe1 else k  # noqa: E731
    lines = [dataclasses.replace(l, j=shift(l.j), i=shift(l.i)) for l in fe.lines]
    continua = [dataclasses.replace(c, j=shift(c.j), i=shift(c.i)) for c in fe.continua]
    q = LinearCoreExpWings(qCore=1.5, qWing=150, Nlambda=101)
    for lo, up, gf, grad, (sig, alp) in [
        (n_fe1, n_fe1 + 2, loggf[0], gamma_rad[0], abo[0]),
        (n_fe1 + 1, n_fe1 + 3, loggf[1], gamma_rad[1], abo[1]),
    ]:
        f = 10**gf / levels[lo].g
        lines.append(
            VoigtLine(
                j=up,
                i=lo,
                f=f,
                type=LineType.CRD,
                quadrature=q,
                broadening=LineBroadening(
                    natural=[RadiativeBroadening(gamma=grad)],
                    elastic=[VdwBarklem(vals=[sig / _A0_CM2, alp]), QuadraticStarkBroadening(coeff=1.0)],
                ),
            )
        )
    return AtomicModel(element=fe.element, levels=levels, lines=lines, continua=continua, collisions=[])


def lightweaver_stokes(
    log_tau,
    temperature,
    vmic_kms,
    B_G,
    inclination_deg,
    azimuth_deg,
    vlos_kms,
    wave_air_A,
    mu=1.0,
    ptop_dyn=None,
    return_ctx=False,
):
    """Emergent (I, Q, U, V) at ``wave_air_A`` from lightweaver, strictly LTE.

    Inputs are on fastinv's conventions (log tau_500 from top to bottom, vlos positive = red
    shift, B in G, angles in degrees); the atmosphere is put in hydrostatic equilibrium by
    lightweaver itself (``ScaleType.Tau500``). Returns an array (4, Nλ).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lw = require("lightweaver")
        from lightweaver.rh_atoms import (
            Al_atom,
            C_atom,
            CaII_atom,
            H_6_atom,
            He_9_atom,
            MgII_atom,
            N_atom,
            Na_atom,
            O_atom,
            S_atom,
            Si_atom,
        )
        from lightweaver.utils import air_to_vac, planck
    c = lambda a: np.ascontiguousarray(a, dtype=float)  # noqa: E731
    log_tau, temperature, vmic_kms, B_G = c(log_tau), c(temperature), c(vmic_kms), c(B_G)
    inclination_deg, azimuth_deg, vlos_kms = c(inclination_deg), c(azimuth_deg), c(vlos_kms)
    if np.any(np.diff(log_tau) <= 0):
        raise ValueError("log_tau must increase from the top of the atmosphere downwards")
    tau = 10.0**log_tau
    kw = {}
    if ptop_dyn is not None:
        kw["Ptop"] = ptop_dyn * 0.1  # dyn/cm^2 -> Pa
    # fastinv's arrays run from the top (small tau) to the bottom; lightweaver the same.
    atmos = lw.Atmosphere.make_1d(
        scale=lw.ScaleType.Tau500,
        depthScale=tau,
        temperature=np.asarray(temperature, float),
        vlos=-np.asarray(vlos_kms, float) * 1e3,
        vturb=np.asarray(vmic_kms, float) * 1e3,
        B=np.asarray(B_G, float) * 1e-4,
        gammaB=np.deg2rad(inclination_deg),
        chiB=np.deg2rad(azimuth_deg),
        **kw,
    )
    atmos.quadrature(5)
    aset = lw.RadiativeSet(
        [
            H_6_atom(),
            C_atom(),
            O_atom(),
            Si_atom(),
            Al_atom(),
            CaII_atom(),
            _fe_atom_with_630(),
            He_9_atom(),
            MgII_atom(),
            N_atom(),
            Na_atom(),
            S_atom(),
        ]
    )
    aset.set_passive("H")
    aset.set_detailed_static("Fe")
    wave_vac = air_to_vac(np.asarray(wave_air_A, float) / 10.0)
    spect = aset.compute_wavelength_grid(extraWavelengths=wave_vac)
    eq = aset.compute_eq_pops(atmos)
    atmos.rays([float(mu)])
    ctx = lw.Context(atmos, spect, eq, Nthreads=1, conserveCharge=False)
    # Strict LTE: the background scattering term uses J; set it to B_λ(T).
    # (lightweaver works in B_nu, SI units, as its utils.planck returns.)
    ctx.spect.J[:] = planck(atmos.temperature[None, :], np.asarray(ctx.spect.wavelength)[:, None])
    ctx.single_stokes_fs()
    wl = np.asarray(ctx.spect.wavelength)
    idx = np.array([np.argmin(np.abs(wl - w)) for w in wave_vac])
    out = np.empty((4, len(idx)))
    I = np.asarray(ctx.spect.I).reshape(len(wl), -1)
    quv = np.asarray(ctx.spect.Quv).reshape(3, len(wl), -1)
    out[0] = I[idx, 0]
    out[1:] = quv[:, idx, 0]
    if return_ctx:
        return out, ctx, atmos
    return out
