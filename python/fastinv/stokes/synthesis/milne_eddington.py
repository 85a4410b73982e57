"""Milne-Eddington Stokes synthesis (C++ kernel, OpenMP over profiles).

Model: Unno-Rachkovsky solution with magneto-optical effects (Landi Degl'Innocenti &
Landolfi 2004, section 9.8) for one or several lines with their full Zeeman patterns,
an optional unmagnetised filling-factor component, macroturbulence and instrument
degradation.

Parameters (one value per profile; astropy Quantities are converted):

=================  ========  ==========================================================
name               unit      meaning
=================  ========  ==========================================================
``B``              G         field strength (>= 0)
``inclination``    deg       angle to the line of sight; < 90 = field toward the observer
``azimuth``        deg       from the +Q reference direction, counter-clockwise
``vlos``           km/s      line-of-sight velocity, positive = redshift (away from the
                             observer; lightweaver's sign is the opposite)
``doppler_width``  mA        Doppler width of the first line (others scaled by lambda0)
``damping``        --        Voigt damping a (>= 0)
``eta0``           --        line-to-continuum opacity ratio of the first line; the others
                             get ``eta0 * strength_ratio`` (default: gf-lambda-Boltzmann)
``S0``, ``S1``     --        source function S0 + S1 tau; continuum I_c = S0 + mu S1
``filling_factor`` --        optional, in [0, 1] (default 1): I = f I_mag + (1-f) I_(B=0),
                             the unmagnetised part being the same atmosphere with B = 0
``vmac``           km/s      optional macroturbulence, Gaussian 1/e half-width (default 0)
=================  ========  ==========================================================

Sign conventions (tested in tests/stokes/test_me.py, the same as lightweaver's): a field
with a component toward the observer gives V > 0 in the blue lobe; a transverse field at
azimuth 0 gives Q < 0 at line centre (Q ~ -cos 2 azimuth, U ~ -sin 2 azimuth there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ... import _core
from ..._units import to_float_array
from .instrument import Instrument
from .lines import SpectralLine, resolve_lines

__all__ = ["MilneEddington", "ME_PARAMETERS", "ME_UNITS", "hinode_sp_wavelength"]

#: Required and optional parameter names.
ME_PARAMETERS = (
    "B",
    "inclination",
    "azimuth",
    "vlos",
    "doppler_width",
    "damping",
    "eta0",
    "S0",
    "S1",
    "filling_factor",
    "vmac",
)
_REQUIRED = ME_PARAMETERS[:9]
#: Units of the parameters (astropy unit strings; "" = dimensionless).
ME_UNITS = {
    "B": "G",
    "inclination": "deg",
    "azimuth": "deg",
    "vlos": "km/s",
    "doppler_width": "mAA",
    "damping": "",
    "eta0": "",
    "S0": "",
    "S1": "",
    "filling_factor": "",
    "vmac": "km/s",
}


def hinode_sp_wavelength() -> np.ndarray:
    """The default wavelength grid: Hinode SP's 112 samples of 21.5 mA around 6302.08 A."""
    return Instrument.hinode_sp().wavelength.copy()


def _convert(name: str, value) -> np.ndarray:
    return to_float_array(value, ME_UNITS[name], f"ME parameter {name!r}")


def _params_to_arrays(params) -> dict[str, np.ndarray]:
    if isinstance(params, np.ndarray) and params.dtype.names:
        items = {k: params[k] for k in params.dtype.names}
    elif isinstance(params, Mapping):
        items = dict(params)
    else:
        raise TypeError("params must be a dict (name -> array) or a numpy structured array")
    unknown = set(items) - set(ME_PARAMETERS)
    if unknown:
        raise ValueError(f"unknown ME parameter(s) {sorted(unknown)}; known: {list(ME_PARAMETERS)}")
    missing = [k for k in _REQUIRED if k not in items]
    if missing:
        raise ValueError(f"missing ME parameter(s) {missing}; required: {list(_REQUIRED)}")
    arrays = {k: _convert(k, v) for k, v in items.items()}
    for k, a in arrays.items():
        if a.ndim > 1:
            raise ValueError(f"ME parameter {k!r} must be a scalar or 1-D array, got shape {a.shape}")
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays.values()))
    except ValueError as exc:
        raise ValueError("ME parameters must all have the same length N (or be scalars)") from exc
    n = shape[0] if shape else 1
    return {k: np.ascontiguousarray(np.broadcast_to(a, (n,)), dtype=np.float64) for k, a in arrays.items()}


class MilneEddington:
    """Milne-Eddington synthesis of full-Stokes profiles.

    Parameters
    ----------
    lines : sequence of str or SpectralLine
        Lines to synthesise (registry names or :class:`SpectralLine` objects, which are
        registered). The first line is the reference for ``eta0`` and ``doppler_width``.
    wavelength : array_like or Quantity, optional
        Output wavelengths [A, air]. Default: the instrument's grid, or Hinode SP's 112
        samples when there is no instrument. With an instrument, profiles are synthesised
        on its fine grid, degraded with its LSF and resampled onto this grid.
    instrument : Instrument, optional
    strength_ratios : sequence of float, optional
        ``eta0`` of each line relative to the first (default
        ``(gf lambda)_k / (gf lambda)_0 * exp(-(chi_k - chi_0) / k 5000 K)``).
    vmac_max : float
        With a Gaussian-LSF instrument the macroturbulence is folded into the LSF; the
        synthesis grid is padded for macroturbulences up to this value [km/s] (default 3;
        larger ones are still handled, with the kernel cut at the grid ends).

    Examples
    --------
    >>> import numpy as np
    >>> from fastinv.stokes import MilneEddington
    >>> me = MilneEddington()
    >>> p = dict(B=[1000.0], inclination=30, azimuth=0, vlos=0, doppler_width=30,
    ...          damping=0.1, eta0=10, S0=0.2, S1=0.8)
    >>> me.synthesize(p).shape
    (1, 4, 112)
    """

    def __init__(
        self,
        lines: Sequence[str | SpectralLine] = ("FeI_6301", "FeI_6302"),
        wavelength=None,
        instrument: Instrument | None = None,
        strength_ratios: Sequence[float] | None = None,
        vmac_max: float = 3.0,
    ) -> None:
        self.lines = resolve_lines(lines, "MilneEddington")
        if instrument is not None and not isinstance(instrument, Instrument):
            raise TypeError("instrument must be a fastinv.stokes.Instrument")
        if wavelength is not None and instrument is not None:
            # resample onto the requested grid with the instrument's LSF
            instrument = instrument.on_grid(wavelength)
        self.instrument = instrument
        if instrument is not None:
            self.wavelength = instrument.wavelength.copy()
            self._inst = instrument.padded_for(vmac_max) if instrument.gaussian_sampling() is not None else instrument
            synth = self._inst.synthesis_grid()
        else:
            self.wavelength = (
                hinode_sp_wavelength()
                if wavelength is None
                else to_float_array(wavelength, "Angstrom", "wavelength").ravel().astype(np.float64)
            )
            synth = self.wavelength
        self.synthesis_wavelength = np.asarray(synth, dtype=np.float64)
        wl = self.synthesis_wavelength
        if wl.size and not any(np.min(np.abs(wl - line.wavelength)) < 100.0 for line in self.lines):
            raise ValueError(
                f"the wavelength grid ({wl.min():g}-{wl.max():g}) is nowhere within 100 A of the "
                f"lines ({', '.join(f'{line.wavelength:g}' for line in self.lines)} A): "
                "wavelengths are air Angstrom (pass an astropy Quantity to use other units)"
            )
        self._me = _core.stokes.MilneEddington(
            [line.name for line in self.lines],
            self.synthesis_wavelength,
            [] if strength_ratios is None else list(map(float, strength_ratios)),
        )
        if instrument is not None:
            gs = self._inst.gaussian_sampling()
            if gs is not None:  # Gaussian LSF: macroturbulence folds into it (faster)
                self._me.set_gaussian_instrument(*gs)
            else:
                self._me.set_instrument(*self._inst.operator())

    @property
    def strength_ratios(self) -> list[float]:
        """``eta0`` of each line relative to the first."""
        return list(self._me.strength_ratios)

    def synthesize(
        self,
        params,
        mu: float = 1.0,
        *,
        add_noise: bool | None = None,
        seed=None,
        threads: int | None = None,
        return_status: bool = False,
    ):
        """Synthesise Stokes I, Q, U, V.

        Parameters
        ----------
        params : dict or numpy structured array
            Parameter name -> scalar or length-N array (see the module docstring).
        mu : float
            cos(heliocentric angle), in (0, 1].
        add_noise : bool, optional
            Add the instrument's Gaussian noise (``noise * I_c``, I_c = S0 + mu S1 of each
            profile). Default: True when there is an instrument with noise > 0.
        seed : int or numpy.random.Generator, optional
            Seed of the noise.
        threads : int, optional
            OpenMP threads (default: OMP_NUM_THREADS / all cores).
        return_status : bool
            Also return the per-profile status (:data:`fastinv.status.ME_STATUS`: 0 = ok,
            1 = invalid parameters: that profile is NaN; the others are unaffected).

        Returns
        -------
        numpy.ndarray, shape (N, 4, n_wavelength)
            I, Q, U, V in the units of S0, S1. ``(profiles, status)`` with
            ``return_status``.
        """
        mu = float(mu)
        if not (0.0 < mu <= 1.0):
            raise ValueError(f"mu = cos(theta) must be in (0, 1], got {mu}")
        arrays = _params_to_arrays(params)
        out, status = self._me.synthesize(arrays, mu, 0 if threads is None else int(threads))
        out = np.asarray(out)
        status = np.asarray(status)
        inst = self.instrument
        if add_noise is None:
            add_noise = inst is not None and inst.noise > 0
        if add_noise:
            if inst is None:
                raise ValueError("add_noise=True needs an instrument (it defines the noise level)")
            continuum = arrays["S0"] + mu * arrays["S1"]
            out = inst.add_noise(out, seed=seed, continuum=continuum)
        return (out, status) if return_status else out

    def __repr__(self) -> str:
        names = ", ".join(line.name for line in self.lines)
        return f"MilneEddington(lines=({names}), {self.wavelength.size} wavelengths, instrument={self.instrument!r})"
