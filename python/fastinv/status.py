"""Per-pixel status codes of every fastinv result, in one place.

Each table maps a code to its meaning; 0 is always "ok". Codes may be added in later
versions, never renumbered. A pixel (or profile) with a non-zero status has NaN products in
the files fastinv writes. The same values are the C++ enums ``fastinv::dem::BpStatus``,
``fastinv::stokes::MeStatus`` and ``fastinv::stokes::LteStatus``.

=================  ==========================================  =============================
table              whose ``status``                            C++ enum
=================  ==========================================  =============================
``DEM_STATUS``     ``BasisPursuit.solve``, ``DeepEM.invert``   ``dem::BpStatus``
``ME_STATUS``      ``MilneEddington.synthesize``               ``stokes::MeStatus``
``LTE_STATUS``     ``LTE.synthesize``                          ``stokes::LteStatus``
``STOKES_STATUS``  ``StokesNet.predict``, ``FrameInverter``    (Python only)
``ME_INV_STATUS``  ``MEInversion.invert``                      ``stokes::MeInversionStatus``
=================  ==========================================  =============================

Examples
--------
>>> from fastinv.status import DEM_STATUS
>>> DEM_STATUS[12]
'bad input (NaN/inf)'
"""

from __future__ import annotations

__all__ = ["DEM_STATUS", "ME_STATUS", "LTE_STATUS", "STOKES_STATUS", "ME_INV_STATUS", "OK"]

#: The code of a good result in every table.
OK = 0

#: DEMs (Basis Pursuit and DeepEM); 0/2/3/10/11 are those of the SSW Basis Pursuit code.
DEM_STATUS = {
    0: "ok",
    2: "infeasible",
    3: "not converged",
    10: "rejected (negative solution)",
    11: "no counts",
    12: "bad input (NaN/inf)",
    13: "EM not finite (overflow)",
    14: "DeepEM refine: no EM >= 0 on the network's grid fits the data within BP's band",
}

#: Milne-Eddington synthesis, per profile.
ME_STATUS = {
    0: "ok",
    1: "invalid parameters (non-finite or out of range)",
    2: "non-finite result (the profile overflowed)",
}

#: LTE synthesis, per atmosphere.
LTE_STATUS = {0: "ok", 1: "invalid input (non-finite or out of range)", 2: "hydrostatic equilibrium failed"}

#: Stokes inversion by a network, per pixel.
STOKES_STATUS = {
    0: "ok",
    1: "non-finite input (NaN or inf) in the profile",
    2: "no signal (continuum <= 0)",
    3: "no data (the map's file for this slit position is missing)",
}

#: Milne-Eddington inversion (Levenberg-Marquardt), per pixel. 1 and 2 keep their fitted
#: products (flagged); 3 and 4 are NaN.
ME_INV_STATUS = {
    0: "ok",
    1: "maximum number of iterations reached",
    2: "reduced chi2 above the threshold",
    3: "bad input (NaN/inf profile, sigma <= 0 or bad initial guess)",
    4: "too dark (mean Stokes I at or below the threshold)",
}
