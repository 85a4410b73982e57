"""Milne-Eddington inversion of full-Stokes profiles (C++ Levenberg-Marquardt, OpenMP).

Each pixel is fitted with the Milne-Eddington model of :class:`MilneEddington` (same lines,
instrument and conventions) by Levenberg-Marquardt with analytic derivatives; 1-sigma
errors come from the covariance (inverse curvature matrix scaled by the reduced chi2).
See docs/stokes-me-inversion.md.

Fitted parameters (names of :data:`ME_FIT_PARAMETERS`, units of
:data:`fastinv.stokes.ME_UNITS`): ``B`` [G], ``inclination`` [deg], ``azimuth`` [deg,
modulo 180], ``vlos`` [km/s], ``doppler_width`` [mA], ``damping``, ``eta0``, ``S0``, ``S1``,
``filling_factor`` (fixed at 1 unless freed), ``vmac`` [km/s] (fixed unless freed) and
``stray_light``, the fraction ``alpha`` of a given stray-light profile ``S`` in the fitted
``(1 - alpha) ME + alpha S`` (0 without a profile; fixed unless freed).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import astropy.units as u
import numpy as np

from ... import _core
from ..._units import to_float_array
from ...status import ME_INV_STATUS
from ..synthesis.instrument import Instrument
from ..synthesis.lines import SpectralLine
from ..synthesis.milne_eddington import ME_PARAMETERS, ME_UNITS, MilneEddington
from .me_init import FIXED_ETA0, classical_guess, eta0_depth_curve
from .me_network import MENetwork, find_me_network
from .stray_light import quiet_sun_profile

__all__ = ["MEInversion", "MEResult", "ME_FIT_PARAMETERS", "ME_CORRELATED", "ME_INV_STATUS"]

#: Parameters of the inversion, in the order of the C++ arrays: the forward model's, then the
#: stray-light fraction.
ME_FIT_PARAMETERS = (*ME_PARAMETERS, "stray_light")
_UNITS = {**ME_UNITS, "stray_light": ""}
# synthesis step / sigma of a Gaussian LSF: 0.84 on Hinode SP gives <= 3e-5 I_c (see oversample)
_STEP_PER_SIGMA = 0.85
_N_CLASSICAL = 10  # columns of classical_guess (and of user guesses without vmac / stray light)
#: Parameters whose correlation coefficients are returned (axes of ``MEResult.correlations``).
ME_CORRELATED = ("B", "inclination", "azimuth", "vlos", "filling_factor")

_DEFAULT_FREE = ME_FIT_PARAMETERS[:9]
# the Jacobian kernel's arithmetic (docs/stokes-me-inversion.md, "Float32 Jacobian kernel")
_DEFAULT_PRECISION = "float32"
_DEFAULT_BOUNDS = {
    "B": (0.0, 6000.0),
    "inclination": (0.0, 180.0),
    "azimuth": (0.0, 180.0),
    "vlos": (-20.0, 20.0),
    "doppler_width": (5.0, 150.0),
    "damping": (1e-4, 5.0),
    "eta0": (1e-2, 500.0),
    "S0": (0.0, 10.0),
    "S1": (0.0, 10.0),
    "filling_factor": (0.0, 1.0),
    "vmac": (0.0, 10.0),
    "stray_light": (0.0, 1.0),
}


@dataclass
class MEResult:
    """Per-pixel results of :meth:`MEInversion.invert` (leading axes: those of the input).

    Attributes
    ----------
    parameters : dict of str to astropy.units.Quantity
        Best-fit parameters (NaN where status is bad input or too dark). ``S0``/``S1`` are in
        the units of the input profiles (dimensionless Quantities).
    errors : dict of str to astropy.units.Quantity
        1-sigma errors, sqrt of the covariance diagonal (NaN for fixed parameters).
    correlations : numpy.ndarray, shape (..., 5, 5)
        Correlation coefficients among :data:`ME_CORRELATED` (NaN where one is fixed).
    chi2 : numpy.ndarray, shape (..., 5)
        Mean squared normalised residual of I, Q, U, V, then the total reduced (weighted)
        chi2.
    iterations : numpy.ndarray of int32
        Levenberg-Marquardt steps tried (all starts together).
    restarts : numpy.ndarray of int8
        Extra starts used.
    status : numpy.ndarray of int8
        :data:`fastinv.status.ME_INV_STATUS`.
    fit : numpy.ndarray or None, shape (..., 4, m)
        Best-fit profiles (when asked for).
    """

    parameters: dict
    errors: dict
    correlations: np.ndarray
    chi2: np.ndarray
    iterations: np.ndarray
    restarts: np.ndarray
    status: np.ndarray
    fit: np.ndarray | None = None


def _fit_instrument(instrument: Instrument, wavelength, oversample) -> Instrument:
    """The instrument with the inversion's synthesis oversampling (Gaussian LSFs only)."""
    if instrument.lsf_fwhm is None or instrument.gaussian_sampling() is None:
        return instrument
    wl = instrument.wavelength if wavelength is None else to_float_array(wavelength, "Angstrom", "wavelength").ravel()
    if wl.size < 2:
        return instrument
    step = float(np.min(np.diff(wl)))
    if oversample is None:
        sigma = instrument.gaussian_sampling()[0]
        oversample = max(1, int(np.ceil(step / (_STEP_PER_SIGMA * sigma) - 1e-9)))
    if int(oversample) < 1:
        raise ValueError(f"oversample must be >= 1 or 'instrument', got {oversample!r}")
    return Instrument(
        instrument.wavelength,
        instrument.lsf_fwhm,
        noise=instrument.noise,
        oversample=int(oversample),
        name=instrument.name,
    )


class MEInversion:
    """Milne-Eddington least-squares inversion.

    Parameters
    ----------
    lines : sequence of str or SpectralLine
        Lines of the model (default Fe I 6301.5 and 6302.5; ``"FeI_6173"`` for HMI-like data).
    instrument : Instrument, optional
        LSF and sampling of the data (the profiles are fitted on its wavelength grid).
    wavelength : array_like or Quantity, optional
        Wavelengths of the data [air A] (without an instrument: no LSF).
    free : sequence of str, optional
        Parameters to fit (default the first nine: all but ``filling_factor``, ``vmac`` and
        ``stray_light``); the others keep their initial values. A free ``vmac``
        starts at 1 km/s where its initial value is 0 (the profile is even in vmac); a free
        ``stray_light``
        needs ``stray_light``.
    weights : sequence of 4 float
        chi2 weights of I, Q, U, V.
    init : "network", "classical", mapping or array, optional
        Initial guess: ``"network"`` (a CNN trained on ME-synthetic profiles,
        :mod:`.me_network`; needs a model for these lines and this grid: a shipped one for
        Hinode SP and the ViSP window, or ``network=``), ``"classical"``
        (:func:`.me_init.classical_guess`), a mapping name -> per-pixel values (missing names
        take the classical values), or an (n, 12) array in :data:`ME_FIT_PARAMETERS` order
        ((n, 10): ``vmac`` and ``stray_light`` from ``vmac`` and ``stray_light_fraction``).
        Default: ``"network"`` where a model exists, else ``"classical"``
        (:attr:`init_method` says which). Can be overridden per call.
    network : str, os.PathLike or MENetwork, optional
        The ME-initialisation model for ``init="network"`` (default: the shipped one whose
        grid and lines match).
    mu : float
        cos(heliocentric angle).
    vmac : float
        Macroturbulence [km/s]: its fixed value, or its initial value when free.
    stray_light : None, "quiet_sun" or array_like, optional
        Stray-light profile ``S``: ``"quiet_sun"`` (each call's :func:`.quiet_sun_profile`
        of its input), one profile (4, m) or Stokes I alone (m,), or one per pixel
        (..., 4, m) given to :meth:`invert`. Same units as the data. Can be overridden per
        call.
    stray_light_fraction : float
        Initial (or, when not free, fixed) fraction ``alpha`` of the stray light.
    oversample : int or "instrument", optional
        Synthesis points per data step with a Gaussian-LSF instrument. Default: the fewest
        giving a step <= 0.85 sigma of the LSF (2 for Hinode SP and ViSP), within 3e-5 I_c of
        a 16x oversampled synthesis on Hinode SP (measured on 400 profiles over the ME
        training ranges; 4e-7 with 3) -- the fit runs about twice as fast as on the
        instrument's own 5.5 mA grid. ``"instrument"``: the instrument's ``oversample``.
    bounds : mapping, optional
        name -> (lower, upper) box limits replacing the defaults.
    max_iterations : int
    tolerance : float
        Converged when an accepted step lowers chi2 by less than this fraction.
    chi2_threshold : float
        Reduced chi2 above which a converged pixel gets status 2.
    dark_threshold : float
        Mean Stokes I at or below which a pixel is "too dark" (status 4).
    restarts : int
        Extra starts, at most, for pixels whose reduced chi2 stays above ``restart_chi2``:
        fixed variants of the initial guess (other polarity, azimuth + 90 deg, both, a
        strong-field start), no random numbers; the best fit is kept. From the classical
        guess (eta0 from the line's core depth) a pixel still above ``restart_chi2`` then
        gets one more start at eta0 = 10; ``restarts=0`` turns both off.
    restart_chi2 : float
    strength_ratios : sequence of float, optional
        ``eta0`` of each line relative to the first (see :class:`MilneEddington`).
    precision : {"float32", "float64"}
        Arithmetic of the profile+derivative kernel inside the fit (16 AVX-512 lanes in
        float32); the normal equations, chi2 and the outputs are float64 either way.
        The measurements behind the default: docs/stokes-me-inversion.md, "Float32 Jacobian
        kernel".
    lambda_start : float, optional
        Levenberg-Marquardt's initial damping of each pixel's first descent (restarts start
        at 0.1). Default: 1e-3 from the network's guess (close to the minimum: fewer steps),
        0.1 from the classical guess or a user's (docs/stokes-me-inversion.md, "Initial
        damping").

    Attributes
    ----------
    LAMBDA_START : dict of str to float
        The default ``lambda_start`` by start: ``"network"`` (1e-3) and ``"classical"`` (0.1,
        also a user's guess).

    Examples
    --------
    >>> import numpy as np
    >>> from fastinv.stokes import MEInversion, MilneEddington
    >>> me = MilneEddington()
    >>> truth = dict(B=1000.0, inclination=40, azimuth=30, vlos=0.5, doppler_width=30,
    ...              damping=0.2, eta0=12, S0=0.2, S1=0.8)
    >>> stokes = me.synthesize(truth)
    >>> res = MEInversion().invert(stokes, sigma=1e-3)
    >>> round(float(res.parameters["B"][0].value))
    1000
    """

    # Levenberg-Marquardt's initial damping by start (docs/stokes-me-inversion.md, "Initial damping")
    LAMBDA_START = {"classical": 0.1, "network": 1e-3}

    def __init__(
        self,
        lines: Sequence[str | SpectralLine] = ("FeI_6301", "FeI_6302"),
        instrument: Instrument | None = None,
        wavelength=None,
        free: Sequence[str] | None = None,
        weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0),
        init=None,
        mu: float = 1.0,
        vmac: float = 0.0,
        bounds: Mapping[str, tuple[float, float]] | None = None,
        max_iterations: int = 100,
        tolerance: float = 1e-6,
        chi2_threshold: float = np.inf,
        dark_threshold: float = 0.0,
        restarts: int = 3,
        restart_chi2: float = 2.0,
        strength_ratios: Sequence[float] | None = None,
        stray_light=None,
        stray_light_fraction: float = 0.0,
        network=None,
        oversample: int | str | None = None,
        precision: str = _DEFAULT_PRECISION,
        lambda_start: float | None = None,
    ) -> None:
        free = _DEFAULT_FREE if free is None else tuple(free)
        if instrument is not None and oversample != "instrument":
            instrument = _fit_instrument(instrument, wavelength, oversample)
        vmac_max = max(3.0, (bounds or {}).get("vmac", _DEFAULT_BOUNDS["vmac"])[1] if "vmac" in free else float(vmac))
        self.model = MilneEddington(
            lines, wavelength=wavelength, instrument=instrument, strength_ratios=strength_ratios, vmac_max=vmac_max
        )
        unknown = set(free) - set(ME_FIT_PARAMETERS)
        if unknown:
            raise ValueError(f"unknown free parameter(s) {sorted(unknown)}; known: {list(ME_FIT_PARAMETERS)}")
        self.free = tuple(k for k in ME_FIT_PARAMETERS if k in free)
        b = dict(_DEFAULT_BOUNDS)
        for k, v in (bounds or {}).items():
            if k not in b:
                raise ValueError(f"bounds: unknown parameter {k!r}")
            b[k] = (float(v[0]), float(v[1]))
        self.bounds = b
        weights = [float(w) for w in weights]
        if len(weights) != 4:
            raise ValueError("weights: give 4 numbers (I, Q, U, V)")
        self.weights = tuple(weights)
        self.mu = float(mu)
        self.max_iterations = int(max_iterations)
        self.tolerance = float(tolerance)
        self.chi2_threshold = float(chi2_threshold)
        self.restarts = int(restarts)
        self.restart_chi2 = float(restart_chi2)
        if precision not in ("float32", "float64"):
            raise ValueError(f"precision must be 'float32' or 'float64', got {precision!r}")
        self.precision = precision
        self.vmac = float(vmac)
        self.network = self._find_network(network)
        if init is None:
            init = "network" if self.network is not None else "classical"
        if isinstance(init, str):
            self._check_init_name(init)
        self.init = init
        self.stray_light = stray_light
        self.stray_light_fraction = float(stray_light_fraction)
        if not 0.0 <= self.stray_light_fraction <= 1.0:
            raise ValueError(f"stray_light_fraction must be in [0, 1], got {stray_light_fraction}")
        if "stray_light" in self.free and stray_light is None:
            raise ValueError("a free stray_light needs stray_light= (a profile or 'quiet_sun')")
        if lambda_start is not None and not 0.0 < float(lambda_start) <= 1.0:
            raise ValueError(f"lambda_start must be in (0, 1], got {lambda_start!r}")
        self.lambda_start = None if lambda_start is None else float(lambda_start)
        self._core_args = (
            self.model._me,
            [k in self.free for k in ME_FIT_PARAMETERS],
            [b[k][0] for k in ME_FIT_PARAMETERS],
            [b[k][1] for k in ME_FIT_PARAMETERS],
            weights,
            self.mu,
            int(max_iterations),
            float(tolerance),
            float(min(chi2_threshold, 1e300)),
            float(dark_threshold),
            int(restarts),
            float(restart_chi2),
            precision,
        )
        self._cores: dict[float, object] = {}
        self._inv = self._core(self.LAMBDA_START["classical"] if lambda_start is None else self.lambda_start)
        # the classical guess's eta0 from the core depth (48 profiles of this model, ~1 ms)
        self._depth_curve = eta0_depth_curve(self.model, self.mu)

    def _core(self, lambda_start: float):
        """The C++ inverter with this initial damping (made once per value)."""
        if lambda_start not in self._cores:
            self._cores[lambda_start] = _core.stokes.MEInversion(*self._core_args, lambda_start=lambda_start)
        return self._cores[lambda_start]

    def _find_network(self, network) -> MENetwork | None:
        names = [line.name for line in self.model.lines]
        if network is None:
            return find_me_network(self.wavelength, names)
        net = network if isinstance(network, MENetwork) else MENetwork(network)
        if not net.matches(self.wavelength, names):
            raise ValueError(
                f"network {net.path}: made for lines {net.lines} on {net.wavelength.size} wavelengths "
                f"({net.wavelength[0]:.4f}-{net.wavelength[-1]:.4f} A), not this inversion's "
                f"{tuple(names)} on {self.wavelength.size}"
            )
        return net

    def _check_init_name(self, init: str) -> None:
        if init not in ("network", "classical"):
            raise ValueError(f"init must be 'network', 'classical', a mapping or an array, got {init!r}")
        if init == "network" and self.network is None:
            raise ValueError(
                "init='network': no ME-initialisation model for these lines and this wavelength grid "
                "(shipped: Hinode SP, 112 points, and the ViSP window, 173 points); train one with "
                "'fastinv train stokes --target me' and pass network=, or use init='classical'"
            )

    @property
    def init_method(self) -> str:
        """``"network"``, ``"classical"`` or ``"user"`` (a mapping or array)."""
        return self.init if isinstance(self.init, str) else "user"

    @property
    def wavelength(self) -> np.ndarray:
        """Wavelengths of the data [air A]."""
        return self.model.wavelength

    def _complete(self, guess: np.ndarray) -> np.ndarray:
        """(n, 10) guesses + the vmac and stray-light columns; (n, 12) as they are."""
        if guess.shape[1] == len(ME_FIT_PARAMETERS):
            return guess
        extra = np.broadcast_to([self.vmac, self.stray_light_fraction], (guess.shape[0], 2))
        return np.column_stack([guess, extra])

    def initial_guess(self, stokes: np.ndarray, init=None) -> np.ndarray:
        """The (n, 12) initial parameters for (n, 4, m) profiles (see ``init``)."""
        init = self.init if init is None else init
        if isinstance(init, str):
            self._check_init_name(init)
            if init == "network":  # trained at mu = 1, where S0 + S1 = I_c; S0 + mu S1 = I_c here
                guess = self.network.predict(stokes)
                guess[:, 8] /= self.mu
                return self._complete(guess)
        if isinstance(init, (str, Mapping)):  # a mapping fills the names it lacks from it
            guess = self._complete(
                classical_guess(stokes, self.wavelength, self.model.lines[0], self.mu, self._depth_curve)
            )
        if isinstance(init, str):
            return guess
        if isinstance(init, Mapping):
            for k, v in init.items():
                if k not in ME_FIT_PARAMETERS:
                    raise ValueError(f"init: unknown parameter {k!r}")
                guess[:, ME_FIT_PARAMETERS.index(k)] = np.broadcast_to(
                    to_float_array(v, _UNITS[k], f"init {k!r}").ravel(), guess.shape[:1]
                )
            return guess
        arr = np.asarray(init, dtype=np.float64)
        cols = arr.shape[-1] if arr.ndim else 0
        if cols not in (_N_CLASSICAL, len(ME_FIT_PARAMETERS)):
            raise ValueError(f"init: give (n, {_N_CLASSICAL}) or (n, {len(ME_FIT_PARAMETERS)}) values, got {arr.shape}")
        arr = self._complete(arr.reshape(-1, cols))
        n = int(np.prod(np.shape(stokes)[:-2]))
        if arr.shape[0] != n:
            raise ValueError(f"init: {arr.shape[0]} rows for {n} pixels")
        return arr

    def invert(
        self, stokes, sigma=None, threads: int | None = None, *, init=None, fit: bool = False, stray_light=None
    ) -> MEResult:
        """Fit every pixel.

        Parameters
        ----------
        stokes : array_like, shape (..., 4, m)
            I, Q, U, V on :attr:`wavelength` (any leading axes).
        sigma : float or array_like, optional
            Noise: a scalar, per Stokes (4,), per wavelength (4, m), per pixel (...), per
            pixel and Stokes (..., 4) or full (..., 4, m). Default: 1e-3 of each pixel's continuum (the
            maximum of its Stokes I; 1 where that is not positive, so such a pixel is reported too
            dark, status 4), or the instrument's noise level when it has one.
        threads : int, optional
            OpenMP threads (default: all). Results do not depend on it.
        init : optional
            Overrides the constructor's ``init`` for this call.
        fit : bool
            Also return the best-fit profiles.
        stray_light : optional
            Overrides the constructor's ``stray_light`` for this call.

        Returns
        -------
        MEResult
        """
        data = np.asarray(stokes, dtype=np.float64)
        m = self.wavelength.size
        if data.ndim < 2 or data.shape[-2:] != (4, m):
            raise ValueError(f"stokes must have shape (..., 4, {m}), got {data.shape}")
        lead = data.shape[:-2]
        flat = np.ascontiguousarray(data.reshape(-1, 4, m))
        n = flat.shape[0]
        sig = self._sigma(sigma, flat, lead)
        guess = np.ascontiguousarray(self.initial_guess(flat, init), dtype=np.float64)
        if guess.shape != (n, len(ME_FIT_PARAMETERS)):
            raise ValueError(f"init: expected {n} x {len(ME_FIT_PARAMETERS)} values")
        stray = self._stray(self.stray_light if stray_light is None else stray_light, flat, lead)
        if stray is None and "stray_light" in self.free:
            raise ValueError("a free stray_light needs stray_light= (a profile or 'quiet_sun')")
        start = self.init if init is None else init
        start = start if isinstance(start, str) else "user"
        if self.lambda_start is None:
            core = self._core(self.LAMBDA_START["network" if start == "network" else "classical"])
        else:
            core = self._inv
        # NaN guesses of unusable pixels are flagged by the C++ side (bad input)
        nthreads = 0 if threads is None else int(threads)
        r = core.invert(flat, sig, guess, bool(fit), nthreads, stray)
        if start == "classical" and self.restarts > 0:
            self._retry_fixed_eta0(core, flat, sig, guess, stray, bool(fit), nthreads, r)
        params = {k: (r["parameters"][:, i].reshape(lead) * u.Unit(_UNITS[k])) for i, k in enumerate(ME_FIT_PARAMETERS)}
        errors = {k: (r["errors"][:, i].reshape(lead) * u.Unit(_UNITS[k])) for i, k in enumerate(ME_FIT_PARAMETERS)}
        return MEResult(
            parameters=params,
            errors=errors,
            correlations=r["correlations"].reshape(lead + (5, 5)),
            chi2=r["chi2"].reshape(lead + (5,)),
            iterations=r["iterations"].reshape(lead),
            restarts=r["restarts"].reshape(lead),
            status=r["status"].reshape(lead),
            fit=r["fit"].reshape(lead + (4, m)) if fit else None,
        )

    def _retry_fixed_eta0(self, core, flat, sig, guess, stray, fit: bool, threads: int, r: dict) -> None:
        """One more start for classical-start pixels still above ``restart_chi2`` after their
        restarts: the same guess with eta0 = ``FIXED_ETA0`` instead of the core depth's; each
        pixel keeps the lower chi2, and counts both starts' iterations and restarts (+1).

        The depth's eta0 misleads where the line is shallow for another reason than a small
        eta0 (a large S0, a strong field): on two sets of 6 000 Hinode SP pixels
        (bench/me_classical_start_ab.py) 0.13 / 0.28 % end above chi2 2 from it, 0.07 / 0.10 %
        from eta0 = 10, 0.03 / 0.07 % with this retry (docs/stokes-me-inversion.md).
        """
        redo = np.flatnonzero((r["chi2"][:, 4] > self.restart_chi2) & (guess[:, 6] != FIXED_ETA0))
        if redo.size == 0:
            return
        again = np.ascontiguousarray(guess[redo])
        again[:, 6] = FIXED_ETA0
        per_pixel = lambda a: a if a is None or a.ndim == 2 else np.ascontiguousarray(a[redo])  # noqa: E731
        r2 = core.invert(np.ascontiguousarray(flat[redo]), per_pixel(sig), again, fit, threads, per_pixel(stray))
        better = r2["chi2"][:, 4] < r["chi2"][redo, 4]
        r["iterations"][redo] += r2["iterations"]
        r["restarts"][redo] = np.minimum(r["restarts"][redo].astype(np.int32) + r2["restarts"] + 1, 127)
        keep = redo[better]
        for k in ("parameters", "errors", "correlations", "chi2", "status") + (("fit",) if fit else ()):
            r[k][keep] = r2[k][better]

    def _stray(self, stray, flat: np.ndarray, lead: tuple) -> np.ndarray | None:
        """The stray-light profile(s) for the C++ side: (4, m), (n, 4, m) or None."""
        if stray is None:
            return None
        m = flat.shape[-1]
        if isinstance(stray, str):
            if stray != "quiet_sun":
                raise ValueError(f"stray_light must be None, 'quiet_sun' or an array, got {stray!r}")
            return quiet_sun_profile(flat)
        s = np.asarray(stray, dtype=np.float64)
        if s.shape == (m,):
            out = np.zeros((4, m))
            out[0] = s
            return out
        if s.shape == (4, m):
            return np.ascontiguousarray(s)
        if s.shape == lead + (4, m):
            return np.ascontiguousarray(s.reshape(-1, 4, m))
        raise ValueError(f"stray_light: shape {s.shape} fits none of ({m},), (4, {m}), {lead + (4, m)}")

    def _sigma(self, sigma, flat: np.ndarray, lead: tuple) -> np.ndarray:
        n, _, m = flat.shape
        if sigma is None:
            inst = self.model.instrument
            level = inst.noise if inst is not None and inst.noise > 0 else 1e-3
            with np.errstate(invalid="ignore"):
                ic = np.max(flat[:, 0], axis=1)
            # no positive I: sigma 0 would make it bad input (3); the C++ calls it too dark (4)
            ic = np.where(ic > 0, ic, np.where(np.isnan(ic), ic, 1.0))
            return np.ascontiguousarray(np.broadcast_to((level * ic)[:, None, None], (n, 4, m)))
        s = np.asarray(sigma, dtype=np.float64)
        if s.ndim == 0:
            return np.full((4, m), float(s))
        if s.shape == (4,):
            return np.ascontiguousarray(np.broadcast_to(s[:, None], (4, m)))
        if s.shape == (4, m) and lead != (4,):
            return np.ascontiguousarray(s)
        if s.shape == lead and lead != (4,):  # one value per pixel
            return np.ascontiguousarray(np.broadcast_to(s.reshape(n, 1, 1), (n, 4, m)))
        if s.shape == lead + (4,):
            return np.ascontiguousarray(np.broadcast_to(s.reshape(n, 4, 1), (n, 4, m)))
        if s.shape == lead + (4, m):
            return np.ascontiguousarray(s.reshape(n, 4, m))
        raise ValueError(
            f"sigma: shape {s.shape} fits none of (), (4,), (4, {m}), {lead}, {lead + (4,)}, {lead + (4, m)}"
        )

    def __repr__(self) -> str:
        return f"MEInversion({self.model!r}, free={self.free})"
