"""Depth-stratified LTE synthesis of polarised line profiles (C++ kernel, OpenMP).

For each atmosphere (:mod:`fastinv.stokes.synthesis.atmospheres`) the C++ core puts T(tau_500) in
hydrostatic equilibrium with a Saha equation of state (electron donors H, He, C, N, O, Na,
Mg, Al, Si, S, K, Ca, Cr, Fe, Ni; Asplund et al. 2009 abundances), computes the continuum
at 500 nm and at the lines (H- bound-free and free-free after John 1988, H I bound-free and
free-free, Thomson, Rayleigh), the LTE line opacity (Saha-Boltzmann populations with Kurucz
partition functions, stimulated emission, radiative + quadratic Stark + Anstee-Barklem-
O'Mara van der Waals damping, Zeeman components from J and g), and solves the polarised
transfer equation with a Planck source function by the DELO-linear method (Rees, Durrant &
Murphy 1989) for any mu.

Checked against lightweaver (tests/stokes/test_lte_lightweaver.py) on FAL-C with four
field configurations, and against the analytic Milne-Eddington solution for an atmosphere
with constant line properties and a source function linear in tau.

Conventions are those of :class:`fastinv.stokes.MilneEddington` (and lightweaver's, with
its velocity sign flipped): v_LOS > 0 is a red shift; a field toward the observer
(inclination < 90 deg) gives V > 0 in the blue lobe; azimuth 0 gives Q < 0 at the core of
a transverse-field line. Inclination, azimuth and v_LOS are in the line-of-sight frame
(as in SIR), also for mu < 1, where mu only changes the optical path (dtau / mu).

Output Stokes are normalised, wavelength by wavelength, to the continuum intensity of the
HSRA quiet-Sun model at the same mu (the usual I/I_c of observations normalised to the local
quiet Sun), unless ``normalize=False`` (then erg s^-1 cm^-2 sr^-1 A^-1).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ... import _core
from ..._units import to_float_array
from ...status import LTE_STATUS
from .atmospheres import as_atmospheres, hsra
from .instrument import Instrument
from .lines import SpectralLine, resolve_lines
from .milne_eddington import hinode_sp_wavelength

__all__ = ["LTE", "LTE_STATUS"]


class LTE:
    """LTE synthesis of full-Stokes profiles from stratified atmospheres.

    Parameters
    ----------
    lines : sequence of str or SpectralLine
        Lines to synthesise (registry names or :class:`SpectralLine`, which are registered).
        The element must be one the equation of state carries (see module docstring).
    wavelength : array_like or Quantity, optional
        Output wavelengths [A, air]. Default: the instrument's grid, or Hinode SP's 112
        samples. With an instrument, profiles are synthesised on its fine grid, degraded
        with its LSF and resampled onto the output grid.
    instrument : Instrument, optional
    line_window : float, optional
        Half-width [A] around each line's rest wavelength inside which the instrument's
        fine grid is synthesised point by point; outside, only a continuum point every
        ~0.1 A is synthesised and the rest interpolated linearly. Saves most of the work on
        wide grids (ViSP's 16 A for two lines) at an error that stays far below the noise
        for 1.5 A (measured in tests/stokes/test_lte_training.py). Default: every point.

    Examples
    --------
    >>> from fastinv.stokes import LTE, atmospheres
    >>> lte = LTE()
    >>> prof = lte.synthesize(atmospheres.falc(B=1000))
    >>> prof.shape
    (1, 4, 112)
    >>> bool(0.2 < prof[0, 0].min() < 0.6 and abs(prof[0, 3]).max() > 0.1)
    True
    """

    def __init__(
        self,
        lines: Sequence[str | SpectralLine] = ("FeI_6301", "FeI_6302"),
        wavelength=None,
        instrument: Instrument | None = None,
        line_window: float | None = None,
    ) -> None:
        self.lines = resolve_lines(lines, "LTE")
        if instrument is not None and not isinstance(instrument, Instrument):
            raise TypeError("instrument must be a fastinv.stokes.Instrument")
        if wavelength is not None and instrument is not None:
            instrument = instrument.on_grid(wavelength)
        self.instrument = instrument
        if instrument is not None:
            self.wavelength = instrument.wavelength.copy()
            synth = instrument.synthesis_grid()
        else:
            self.wavelength = (
                hinode_sp_wavelength()
                if wavelength is None
                else to_float_array(wavelength, "Angstrom", "wavelength").ravel().astype(np.float64)
            )
            synth = self.wavelength
        self.synthesis_wavelength = np.ascontiguousarray(synth, dtype=np.float64)
        computed = self._window_points(line_window)
        self._lte = _core.stokes.LteSynthesizer(
            [line.name for line in self.lines], np.ascontiguousarray(self.synthesis_wavelength[computed])
        )
        self._ic_cache: dict[float, np.ndarray] = {}

    def _window_points(self, line_window: float | None) -> np.ndarray:
        """Indices of the synthesis grid computed directly; sets the interpolation from them."""
        wl = self.synthesis_wavelength
        everything = np.arange(wl.size)
        self._fill = None
        if line_window is None:
            return everything
        line_window = float(line_window)
        if not line_window > 0:
            raise ValueError(f"line_window must be a positive width in Angstrom, got {line_window}")
        centres = np.array([line.wavelength for line in self.lines])
        near = np.any(np.abs(wl[:, None] - centres[None, :]) <= line_window, axis=1)
        step = max(1, int(round(0.1 / max(float(np.median(np.diff(wl))), 1e-12))))
        keep = near | (everything % step == 0)
        keep[[0, -1]] = True
        computed = everything[keep]
        if computed.size == wl.size:
            return everything
        right = np.clip(np.searchsorted(computed, everything), 1, computed.size - 1)
        left = right - 1
        weight = (wl - wl[computed[left]]) / (wl[computed[right]] - wl[computed[left]])
        self._fill = (left, right, weight)
        return computed

    def _expand(self, out: np.ndarray) -> np.ndarray:
        """Spectra on the computed points -> the whole synthesis grid (linear in wavelength)."""
        if self._fill is None:
            return out
        left, right, weight = self._fill
        return out[..., left] * (1.0 - weight) + out[..., right] * weight

    def quiet_sun_continuum(self, mu: float = 1.0) -> np.ndarray:
        """HSRA continuum intensity [erg s^-1 cm^-2 sr^-1 A^-1] on the synthesis grid."""
        mu = float(mu)
        if mu not in self._ic_cache:
            a = hsra()
            out, status = self._lte.synthesize(
                a.log_tau, a.temperature, a.vmic, a.B, a.inclination, a.azimuth, a.vlos, mu, 1, False
            )
            if int(status[0]) != 0:  # pragma: no cover - the bundled model always works
                raise RuntimeError("LTE: continuum of the HSRA reference failed")
            self._ic_cache[mu] = self._expand(np.asarray(out)[0, 0])
        return self._ic_cache[mu]

    def synthesize(
        self,
        atmospheres,
        mu: float = 1.0,
        *,
        normalize: bool = True,
        add_noise: bool | None = None,
        seed=None,
        threads: int | None = None,
        return_status: bool = False,
    ):
        """Synthesise Stokes I, Q, U, V.

        Parameters
        ----------
        atmospheres : Atmospheres or dict
            ``N`` atmospheres (see :mod:`fastinv.stokes.synthesis.atmospheres`).
        mu : float
            cos(heliocentric angle), in (0, 1].
        normalize : bool
            Divide by the HSRA quiet-Sun continuum at this mu (default) or return absolute
            intensities [erg s^-1 cm^-2 sr^-1 A^-1].
        add_noise : bool, optional
            Add the instrument's Gaussian noise (``noise`` x the quiet-Sun continuum).
            Default: True when there is an instrument with noise > 0.
        seed : int or numpy.random.Generator, optional
            Seed of the noise.
        threads : int, optional
            OpenMP threads (default: OMP_NUM_THREADS / all cores).
        return_status : bool
            Also return the per-atmosphere status (see :data:`LTE_STATUS`); failed
            atmospheres are NaN, the others unaffected.

        Returns
        -------
        numpy.ndarray, shape (N, 4, n_wavelength)
            ``(profiles, status)`` with ``return_status``.
        """
        mu = float(mu)
        if not (0.0 < mu <= 1.0):
            raise ValueError(f"mu = cos(theta) must be in (0, 1], got {mu}")
        atm = as_atmospheres(atmospheres)
        out, status = self._lte.synthesize(
            atm.log_tau,
            atm.temperature,
            atm.vmic,
            atm.B,
            atm.inclination,
            atm.azimuth,
            atm.vlos,
            mu,
            0 if threads is None else int(threads),
            True,
        )
        out = self._expand(np.asarray(out))
        status = np.asarray(status)
        ic = self.quiet_sun_continuum(mu)
        if normalize:
            out = out / ic[None, None, :]
        inst = self.instrument
        if inst is not None:
            out = inst.degrade(out)
        if add_noise is None:
            add_noise = inst is not None and inst.noise > 0
        if add_noise:
            if inst is None:
                raise ValueError("add_noise=True needs an instrument (it defines the noise level)")
            level = 1.0 if normalize else float(np.median(ic))
            out = inst.add_noise(out, seed=seed, continuum=level)
        return (out, status) if return_status else out

    def __repr__(self) -> str:
        names = ", ".join(line.name for line in self.lines)
        return (
            f"LTE(lines=({names}), {self.wavelength.size} wavelengths "
            f"{self.wavelength[0]:.3f}-{self.wavelength[-1]:.3f} A, "
            f"instrument={self.instrument!r})"
        )
