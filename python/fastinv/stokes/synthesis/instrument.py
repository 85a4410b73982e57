"""Instrument degradation: line-spread function, resampling, noise.

An :class:`Instrument` maps spectra synthesised on a fine, uniform wavelength grid
(:meth:`Instrument.synthesis_grid`) to the instrument's own grid in one step: every output
sample is the LSF-weighted (trapezoid-rule) average of the fine spectrum around it, i.e.
convolution with the LSF followed by sampling at the instrument wavelengths. Gaussian noise
of ``noise * I_c`` is added by :meth:`Instrument.add_noise` (seeded).

Presets (approximate -- pass ``wavelength=`` to match a given observation's CRVAL/CDELT):

- :meth:`Instrument.hinode_sp`: Hinode SOT/SP, 112 samples of 21.5 mA centred on
  6302.08 A, Gaussian LSF of 30 mA FWHM (NAOJ: "spectral resolution / sampling
  30 mA / 21.5 mA"; Lites et al. 2013, Sol. Phys. 283, 579).
- :meth:`Instrument.visp`: DKIST ViSP at 630 nm, 980 samples of 16.25 mA centred on
  6302.0 A, Gaussian LSF of FWHM lambda / 180 000 = 35 mA (the minimum resolving power
  of its design, de Wijn et al. 2022, Sol. Phys. 297, 22). The real ViSP window also holds
  lines that the ME model does not include (e.g. Fe I 6297.8, telluric O2 6302.0/6302.8).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ... import _core
from ..._units import to_float_array

__all__ = ["Instrument"]

_FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


class Instrument:
    """Spectrograph model: output wavelength grid, line-spread function, noise.

    Parameters
    ----------
    wavelength : array_like or astropy Quantity
        Output (instrument) wavelengths, air, Angstrom if unitless, strictly increasing.
    lsf_fwhm : float or Quantity, optional
        FWHM of a Gaussian LSF [mA if unitless].
    lsf : callable, optional
        Instead of ``lsf_fwhm``: a function of the wavelength offset [A] returning the
        (unnormalised) LSF; ``lsf_halfwidth`` [A] must then give its support.
    lsf_halfwidth : float, optional
        Half-width [A] of the tabulated/callable LSF's support.
    noise : float
        Standard deviation of the Gaussian noise in units of the continuum intensity
        (default 1e-3; Hinode normal maps have ~1e-3, Agudelo et al. used 5.9e-4).
    vmac_max : float
        Largest macroturbulence [km/s] the synthesis grid is padded for (Gaussian LSF:
        models that fold the macroturbulence into the LSF need the longer reach; rows of
        larger ones use the part of the kernel inside the grid). Default 0;
        :class:`MilneEddington` asks for its own padded copy (:meth:`padded_for`).
    oversample : int, optional
        Synthesis grid step = smallest output step / oversample. Default: the smallest
        integer giving a step <= 5.5 mA (4 for Hinode SP, 3 for ViSP), which keeps ME
        profiles within 2e-5 I_c of a 16x oversampled synthesis
        (tests/stokes/test_instrument.py).
    name : str

    Examples
    --------
    >>> from fastinv.stokes import Instrument
    >>> sp = Instrument.hinode_sp()
    >>> sp.wavelength.size, round(float(sp.wavelength[1] - sp.wavelength[0]), 4)
    (112, 0.0215)
    """

    def __init__(
        self,
        wavelength,
        lsf_fwhm=None,
        *,
        lsf: Callable | None = None,
        lsf_halfwidth: float | None = None,
        noise: float = 1e-3,
        oversample: int | None = None,
        vmac_max: float = 0.0,
        name: str = "custom",
    ) -> None:
        wl = to_float_array(wavelength, "Angstrom", "wavelength").ravel()
        if wl.size < 1 or not np.all(np.isfinite(wl)) or np.any(wl <= 0):
            raise ValueError("Instrument: wavelength must be positive finite Angstrom values")
        if wl.size > 1 and np.any(np.diff(wl) <= 0):
            raise ValueError("Instrument: wavelength must be strictly increasing")
        if (lsf_fwhm is None) == (lsf is None):
            raise ValueError("Instrument: give exactly one of lsf_fwhm (Gaussian) or lsf (callable)")
        if lsf_fwhm is not None:
            fwhm = float(to_float_array(lsf_fwhm, "mAA", "lsf_fwhm")) * 1e-3
            if not (fwhm > 0 and math.isfinite(fwhm)):
                raise ValueError("Instrument: lsf_fwhm must be positive")
            sigma = fwhm * _FWHM_TO_SIGMA
            self._lsf = lambda d: np.exp(-0.5 * (d / sigma) ** 2)
            self._reach = 5.0 * sigma
            self.lsf_fwhm = fwhm * 1e3
            self._sigma = sigma
        else:
            if lsf_halfwidth is None or not lsf_halfwidth > 0:
                raise ValueError("Instrument: a callable lsf needs lsf_halfwidth > 0 [A]")
            self._lsf = lsf
            self._reach = float(lsf_halfwidth)
            self.lsf_fwhm = None
            sigma = None
        if not (noise >= 0 and math.isfinite(noise)):
            raise ValueError("Instrument: noise must be finite and >= 0")
        if not (vmac_max >= 0 and math.isfinite(vmac_max)):
            raise ValueError("Instrument: vmac_max must be finite and >= 0")
        self.vmac_max = float(vmac_max)
        self._sigma = sigma if lsf_fwhm is not None else None
        self.wavelength = wl
        self.noise = float(noise)
        step = float(np.min(np.diff(wl))) if wl.size > 1 else self._reach
        if oversample is None:
            oversample = max(1, math.ceil(step / 5.5e-3))
        if int(oversample) < 1:
            raise ValueError("Instrument: oversample must be >= 1")
        self.oversample = int(oversample)
        self.name = name
        self._step = step / self.oversample
        self._cache: tuple | None = None

    # ------------------------------------------------------------------ presets
    @classmethod
    def hinode_sp(cls, noise: float = 1e-3, oversample: int | None = None, centre: float = 6302.08) -> "Instrument":
        """Hinode SOT/SP: 112 x 21.5 mA around ``centre`` [A], 30 mA FWHM Gaussian LSF."""
        wl = centre + (np.arange(112) - 55.5) * 0.0215
        return cls(wl, 30.0, noise=noise, oversample=oversample, name="hinode_sp")

    @classmethod
    def visp(
        cls, noise: float = 1e-3, oversample: int | None = None, centre: float = 6302.0, n: int = 980
    ) -> "Instrument":
        """DKIST ViSP (630 nm arm): ``n`` x 16.25 mA around ``centre``, R = 180 000 LSF."""
        wl = centre + (np.arange(n) - (n - 1) / 2) * 0.01625
        return cls(wl, centre / 180000.0 * 1e3, noise=noise, oversample=oversample, name="visp")

    # ------------------------------------------------------------------ operator
    def synthesis_grid(self) -> np.ndarray:
        """Uniform fine grid [A] on which to synthesise before :meth:`degrade`.

        It covers the output grid plus the LSF's reach on both sides (for a Gaussian LSF
        the reach of the LSF folded with a macroturbulence of ``vmac_max``).
        """
        return self._operator()[0]

    def _padding(self) -> float:
        """Half-width [A] of the LSF (with vmac_max folded in, for a Gaussian LSF)."""
        if self._sigma is None:
            return self._reach
        w = float(self.wavelength.mean()) * self.vmac_max / 299792.458
        return max(self._reach, 5.0 * math.sqrt(self._sigma**2 + 0.5 * w * w))

    def _uniform_output(self) -> bool:
        d = np.diff(self.wavelength)
        return d.size > 0 and float(np.max(np.abs(d - d.mean()))) <= 1e-9 * float(d.mean())

    def _operator(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self._cache is None:
            # Fine grid aligned with the first output sample (uniform outputs then fall on
            # grid points pad + k * oversample), padded by the kernel's reach.
            pad = int(math.ceil(self._padding() / self._step)) + 1
            span = int(math.ceil((self.wavelength[-1] - self.wavelength[0]) / self._step - 1e-9))
            n = span + 2 * pad + 1
            grid = self.wavelength[0] + self._step * (np.arange(n) - pad)
            # trapezoid weights of the fine grid
            tw = np.full(n, self._step)
            tw[0] = tw[-1] = 0.5 * self._step
            rows = []
            for lam in self.wavelength:
                j0 = int(np.searchsorted(grid, lam - self._reach, side="left"))
                j1 = int(np.searchsorted(grid, lam + self._reach, side="right"))
                w = np.asarray(self._lsf(grid[j0:j1] - lam), dtype=np.float64) * tw[j0:j1]
                s = w.sum()
                if not (s > 0 and np.all(np.isfinite(w))):
                    raise ValueError("Instrument: the LSF must be finite and positive somewhere within lsf_halfwidth")
                rows.append((j0, w / s))
            width = max(len(w) for _, w in rows)
            start = np.empty(len(rows), dtype=np.int64)
            weights = np.zeros((len(rows), width))
            for k, (j0, w) in enumerate(rows):
                j0 = min(j0, n - width)  # keep the band inside the grid; pad with zeros
                off = rows[k][0] - j0
                start[k] = j0
                weights[k, off : off + len(w)] = w
            self._cache = (grid, start, weights, pad)
        return self._cache[:3]

    def on_grid(self, wavelength) -> "Instrument":
        """This instrument (LSF, noise, oversampling, name) with output wavelengths
        ``wavelength`` (Angstrom if unitless); the synthesis models' ``wavelength=`` with an
        ``instrument=``."""
        wl = to_float_array(wavelength, "Angstrom", "wavelength").ravel()
        if self.lsf_fwhm:
            return Instrument(wl, self.lsf_fwhm, noise=self.noise, oversample=self.oversample, name=self.name)
        return Instrument(
            wl, lsf=self._lsf, lsf_halfwidth=self._reach, noise=self.noise, oversample=self.oversample, name=self.name
        )

    def padded_for(self, vmac_max: float) -> "Instrument":
        """A copy whose synthesis grid is padded for macroturbulence up to ``vmac_max``."""
        if self._sigma is not None:
            return Instrument(
                self.wavelength,
                self.lsf_fwhm,
                noise=self.noise,
                oversample=self.oversample,
                vmac_max=vmac_max,
                name=self.name,
            )
        return Instrument(
            self.wavelength,
            lsf=self._lsf,
            lsf_halfwidth=self._reach,
            noise=self.noise,
            oversample=self.oversample,
            vmac_max=vmac_max,
            name=self.name,
        )

    def gaussian_sampling(self) -> tuple[float, int, int, int] | None:
        """``(sigma [A], first, stride, n_out)`` when the LSF is Gaussian and the output
        samples are points ``first + k * stride`` of :meth:`synthesis_grid` (uniform output
        grid), else None. Models use it to fold macroturbulence into the LSF."""
        if self._sigma is None or not self._uniform_output():
            return None
        self._operator()
        return self._sigma, self._cache[3], self.oversample, self.wavelength.size

    def operator(self) -> tuple[int, np.ndarray, np.ndarray]:
        """``(n_in, start, weights)`` of the banded LSF + resampling operator."""
        grid, start, weights = self._operator()
        return grid.size, start, weights

    def degrade(self, spectra: np.ndarray) -> np.ndarray:
        """Convolve with the LSF and resample spectra given on :meth:`synthesis_grid`.

        Parameters
        ----------
        spectra : array_like, shape (..., n_fine)

        Returns
        -------
        numpy.ndarray, shape (..., n_instrument)
        """
        n_in, start, weights = self.operator()
        spectra = np.ascontiguousarray(spectra, dtype=np.float64)
        if spectra.shape[-1] != n_in:
            raise ValueError(f"degrade: spectra must be on synthesis_grid() ({n_in} points), got {spectra.shape[-1]}")
        return np.asarray(_core.stokes.apply_operator(n_in, start, weights, spectra))

    def add_noise(self, spectra: np.ndarray, seed=None, continuum=1.0) -> np.ndarray:
        """Return ``spectra`` plus Gaussian noise of ``noise * continuum`` (reproducible).

        Parameters
        ----------
        spectra : array_like, shape (N, 4, n_lambda) or any shape
        seed : int, numpy.random.Generator or None
        continuum : float or array_like
            I_c per profile (broadcast against ``spectra.shape[:-2]`` + (1, 1) for
            (N, 4, n) arrays), default 1.
        """
        spectra = np.asarray(spectra, dtype=np.float64)
        rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        sigma = self.noise * np.asarray(continuum, dtype=np.float64)
        if sigma.ndim == 1 and spectra.ndim == 3:
            sigma = sigma[:, None, None]
        return spectra + rng.standard_normal(spectra.shape) * sigma

    def __repr__(self) -> str:
        lsf = f"lsf_fwhm={self.lsf_fwhm:.2f} mA" if self.lsf_fwhm else "lsf=callable"
        return (
            f"Instrument({self.name!r}, {self.wavelength.size} samples "
            f"{self.wavelength[0]:.3f}-{self.wavelength[-1]:.3f} A, {lsf}, "
            f"noise={self.noise:g}, oversample={self.oversample})"
        )
