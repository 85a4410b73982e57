"""Independent NumPy/SciPy Milne-Eddington reference (used by tests and bench/).

Written separately from fastinv's C++ code: Voigt/Faraday profiles from
``scipy.special.wofz``, Zeeman strengths from ``sympy.physics.wigner.wigner_3j``, and the
emergent Stokes vector either from the closed-form Unno-Rachkovsky expressions
(``method="closed"``, vectorised, the benchmark peer) or by solving the 4x4 system
``I(0) = S0 e0 + mu S1 K^-1 e0`` of the Milne-Eddington atmosphere directly with
``numpy.linalg.solve`` (``method="solve"``: no closed-form algebra at all), where K is the
propagation matrix in LL04's convention

    K = [[eI,  eQ,  eU,  eV],
         [eQ,  eI,  rV, -rU],
         [eU, -rV,  eI,  rQ],
         [eV,  rU, -rQ,  eI]].

Parameter names, units and conventions are those of fastinv.stokes.MilneEddington.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.special import wofz

C_KMS = 299792.458
# Zeeman splitting per unit g: e lambda^2 B / (4 pi m_e c^2), CGS (CODATA 2018) -> A / (A^2 G)
LARMOR = 4.80320471e-10 / (4 * np.pi * 9.1093837015e-28 * 2.99792458e10**2) * 1e-8
K_B_EV = 8.617333262e-5

# The two lines' data (issue 5 table; Lande factors from LS coupling).
LINES = {
    "FeI_6301": dict(wavelength=6301.5012, chi_low=3.654, log_gf=-0.718, j_low=2, j_up=2, g_low=11 / 6, g_up=1.5),
    "FeI_6302": dict(wavelength=6302.4936, chi_low=3.686, log_gf=-1.165, j_low=1, j_up=0, g_low=2.5, g_up=0.0),
}


def zeeman_components(j_low, g_low, j_up, g_up):
    """List of (q, shift, strength) with sympy's 3j symbols, strengths normalised per q."""
    from sympy import Rational
    from sympy.physics.wigner import wigner_3j

    def rat(x):
        return Rational(Fraction(x).limit_denominator(2))

    comps = []
    for q in (-1, 0, 1):
        group = []
        mu = -j_up
        while mu <= j_up + 1e-9:
            ml = mu + q
            if abs(ml) <= j_low + 1e-9:
                s = 3 * float(wigner_3j(rat(j_up), rat(j_low), 1, rat(-mu), rat(ml), -q)) ** 2
                if s > 1e-14:
                    group.append((q, g_low * ml - g_up * mu, s))
            mu += 1
        total = sum(g[2] for g in group)
        comps += [(q, sh, s / total) for q, sh, s in group]
    return comps


def strength_ratios(names, t_ex=5000.0):
    l0 = LINES[names[0]]
    return [
        10 ** (LINES[n]["log_gf"] - l0["log_gf"])
        * LINES[n]["wavelength"]
        / l0["wavelength"]
        * np.exp(-(LINES[n]["chi_low"] - l0["chi_low"]) / (K_B_EV * t_ex))
        for n in names
    ]


def _gauss_smooth(spec, wl, width):
    """Gaussian smoothing on a uniform grid: discrete kernel exp(-(j/w)^2), |j| <= 5w + 1,
    with w (in steps) solved (brentq) so that its variance is width^2 / 2; the spectrum
    is continued beyond the ends by point reflection."""
    from scipy.optimize import brentq

    h = (wl[-1] - wl[0]) / (wl.size - 1)
    target = 0.5 * (width / h) ** 2

    def kern(w):
        J = min(wl.size - 1, max(1, int(5 * w) + 1))
        j = np.arange(-J, J + 1)
        return j, np.exp(-((j / w) ** 2))

    def excess(w):
        j, k = kern(w)
        return (k * j**2).sum() / k.sum() - target

    w = brentq(excess, 1e-3, max(10.0, 10 * width / h), xtol=1e-14, rtol=1e-14)
    j, k = kern(w)
    k = k / k.sum()
    J, n = j[-1], wl.size
    # continue the spectrum beyond the ends by point reflection: y(-m) = 2 y(0) - y(m)
    left = 2 * spec[..., :1] - spec[..., J:0:-1]
    right = 2 * spec[..., -1:] - spec[..., -2 : -J - 2 : -1]
    ext = np.concatenate([left, spec, right], axis=-1)
    out = np.zeros_like(spec)
    for m, km in zip(j, k):
        out += km * ext[..., J + m : J + m + n]
    return out


def synthesize(params, wavelength, mu=1.0, lines=("FeI_6301", "FeI_6302"), method="closed", ratios=None):
    """(N, 4, n_lambda) Stokes profiles; ``params`` as for fastinv's MilneEddington."""
    wl = np.asarray(wavelength, dtype=np.float64)
    P = {k: np.atleast_1d(np.asarray(v, dtype=np.float64)) for k, v in params.items()}
    n = max(v.size for v in P.values())
    P = {k: np.broadcast_to(v, (n,)).astype(np.float64) for k, v in P.items()}
    B, gam, chi = P["B"], np.deg2rad(P["inclination"]), np.deg2rad(P["azimuth"])
    vlos, dw, a, eta0 = P["vlos"], P["doppler_width"] * 1e-3, P["damping"], P["eta0"]
    S0, S1 = P["S0"], P["S1"]
    f = P.get("filling_factor", np.ones(n))
    vmac = P.get("vmac", np.zeros(n))
    ratios = strength_ratios(lines) if ratios is None else ratios
    lam_ref = LINES[lines[0]]["wavelength"]
    phi = np.zeros((3, n, wl.size))
    psi = np.zeros((3, n, wl.size))
    phi0 = np.zeros((n, wl.size))
    for name, r in zip(lines, ratios):
        L = LINES[name]
        lam0 = L["wavelength"]
        dld = dw * lam0 / lam_ref
        x = (wl[None, :] - lam0 * (1 + vlos[:, None] / C_KMS)) / dld[:, None]
        vb = LARMOR * lam0**2 * B / dld
        for q, shift, s in zeeman_components(L["j_low"], L["g_low"], L["j_up"], L["g_up"]):
            w = wofz(x - shift * vb[:, None] + 1j * a[:, None])
            phi[q + 1] += r * s * w.real / np.sqrt(np.pi)
            psi[q + 1] += r * s * w.imag / np.sqrt(np.pi)
        phi0 += r * wofz(x + 1j * a[:, None]).real / np.sqrt(np.pi)
    h = (eta0 / 2)[:, None]
    sg, cg = np.sin(gam)[:, None], np.cos(gam)[:, None]
    c2x, s2x = np.cos(2 * chi)[:, None], np.sin(2 * chi)[:, None]
    pb, pp, pr = phi
    qb, qp, qr = psi
    eI = 1 + h * (pp * sg**2 + (pb + pr) / 2 * (1 + cg**2))
    eQ = h * (pp - (pb + pr) / 2) * sg**2 * c2x
    eU = h * (pp - (pb + pr) / 2) * sg**2 * s2x
    eV = h * (pr - pb) * cg
    rQ = h * (qp - (qb + qr) / 2) * sg**2 * c2x
    rU = h * (qp - (qb + qr) / 2) * sg**2 * s2x
    rV = h * (qr - qb) * cg
    S0c, S1c = S0[:, None], S1[:, None]
    if method == "solve":
        K = np.stack(
            [
                np.stack([eI, eQ, eU, eV], -1),
                np.stack([eQ, eI, rV, -rU], -1),
                np.stack([eU, -rV, eI, rQ], -1),
                np.stack([eV, rU, -rQ, eI], -1),
            ],
            -2,
        )  # (n, nl, 4, 4)
        e0 = np.zeros(K.shape[:-1] + (1,))
        e0[..., 0, 0] = 1.0
        sol = np.linalg.solve(K, e0)[..., 0]  # (n, nl, 4)
        stokes = mu * S1c[..., None] * sol
        stokes[..., 0] += S0c
        out = np.moveaxis(stokes, -1, 1)
    elif method == "closed":
        # LL04 eq. 9.110 (del Toro Iniesta 2003, eq. 8.14)
        pi_ = eQ * rQ + eU * rU + eV * rV
        delta = eI**2 * (eI**2 - eQ**2 - eU**2 - eV**2 + rQ**2 + rU**2 + rV**2) - pi_**2
        I = S0c + mu * S1c / delta * eI * (eI**2 + rQ**2 + rU**2 + rV**2)
        Q = -mu * S1c / delta * (eI**2 * eQ + eI * (eV * rU - eU * rV) + rQ * pi_)
        U = -mu * S1c / delta * (eI**2 * eU + eI * (eQ * rV - eV * rQ) + rU * pi_)
        V = -mu * S1c / delta * (eI**2 * eV + eI * (eU * rQ - eQ * rU) + rV * pi_)
        out = np.stack([I, Q, U, V], axis=1)
    else:
        raise ValueError(method)
    inm = S0c + mu * S1c / (1 + eta0[:, None] * phi0)
    fc = f[:, None]
    out = out.copy()
    out[:, 0] = fc * out[:, 0] + (1 - fc) * inm
    out[:, 1:] *= fc[:, None]
    for i in np.nonzero(vmac > 0)[0]:
        width = lam_ref * vmac[i] / C_KMS
        out[i] = _gauss_smooth(out[i], wl, width)
    return out
