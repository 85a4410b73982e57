"""Sparse DEMs by Basis Pursuit (Cheung et al. 2015, ApJ 807, 143), solved in C++.

Per pixel, the LP of SSW ``aia_sparse_em_solve`` V1.001::

    minimise sum(x)  subject to  max(y - eta, 0) <= D x <= y + eta,  x >= 0,  eta = tolfac*sigma

is solved by fastinv's own dense dual simplex (``fastinv._core``), in parallel over pixels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import numpy as np

from .. import _core, _dask
from .._optional import require
from .._units import to_float_array
from ..status import DEM_STATUS
from .response import AIA_CHANNELS, TemperatureResponse, load_response

__all__ = ["BasisPursuit", "BPResult", "aia_error", "DEM_STATUS", "DEFAULT_LOGT", "DEEPEM_LOGT", "DICTFAC"]

#: Dictionary scale: coefficients are in units of 1e26 cm^-5 (as SSW ``Dictfac``).
DICTFAC = 1e26
#: Default grid of Cheung et al. (2015): log T = 5.5 ... 7.5, 21 bins.
DEFAULT_LOGT = np.round(5.5 + 0.1 * np.arange(21), 10)
#: DeepEM's grid: log T = 5.5 ... 7.2, 18 bins.
DEEPEM_LOGT = np.round(5.5 + 0.1 * np.arange(18), 10)


def aia_error(counts_dn, n_sample: float = 1.0) -> np.ndarray:
    """AIA 1-sigma uncertainty in DN (SSW ``aia_bp_estimate_error``, V3 table).

    Shot noise (DN per photon per channel), dark (0.18 DN), read (1.15 DN), quantisation
    (0.288819 DN) and compression (for counts >= 25) noise, added in quadrature.

    Parameters
    ----------
    counts_dn : array_like, shape (6, ...)
        Counts in DN (not DN/s), channels 94, 131, 171, 193, 211, 335. Negatives count as 0.
    n_sample : float
        Number of pixels summed or averaged (N*N for N x N binning).

    Returns
    -------
    ndarray, same shape: sigma in DN.

    Examples
    --------
    >>> import numpy as np
    >>> from fastinv.dem import aia_error
    >>> s = aia_error(np.full((6, 1), 100.0))
    >>> bool(s[2, 0] > np.sqrt(100 * 1.122))
    True
    """
    c = to_float_array(counts_dn, "DN", "counts_dn")
    if c.ndim < 1 or c.shape[0] != 6:
        raise ValueError(f"counts_dn must have shape (6, ...) for channels {AIA_CHANNELS}, got {c.shape}")
    flat = np.ascontiguousarray(c.reshape(6, -1))
    return np.asarray(_core.dem.aia_error(flat, float(n_sample))).reshape(c.shape)


#: The sparse solution's own error in the total EM, as a fraction of it, added in quadrature to
#: the Monte-Carlo spread (which misses it: on Gaussian DEMs with AIA noise only 55 % of the true
#: total EMs lie within the Monte-Carlo 1 sigma). Fitted as the value that puts 68.3 % of them
#: inside on two sets of 2000 synthetic DEMs (seeds 11, 12 of the test's generator: 0.086, 0.093);
#: docs/basis-pursuit.md.
TOTAL_EM_MODEL_REL = 0.09


@dataclass
class BPResult:
    """Per-pixel Basis Pursuit solutions; trailing axes are those of the input ``y``.

    Attributes
    ----------
    em : ndarray (nT, ...)
        Emission measure per log T bin, cm^-5 (0 where status != 0).
    coeffs : ndarray (ncoef, ...) or None
        Basis coefficients in units of 1e26 cm^-5 (None from ``run_bp`` unless asked for).
    status : ndarray of int8
        0 ok, 2 infeasible, 3 not converged, 10 rejected, 11 no counts, 12 bad input.
    tolfac : ndarray
        Tolerance factor of the last attempt (the successful one where status == 0).
    objective : ndarray
        Sum of the coefficients (the LP objective), 1e26 cm^-5.
    model : ndarray (nchan, ...)
        Re-synthesised data D @ coeffs in DN s^-1 pixel^-1.
    chi2 : ndarray
        sum_c ((model - max(y, 0)) / sigma)^2; NaN where status != 0.
    iterations : ndarray of int32
        Simplex iterations spent on the pixel (all attempts).
    logt : ndarray (nT,)
        The grid of ``em``.
    em_err, logt_err, total_em_err : ndarray or None
        1-sigma Monte-Carlo errors of ``em`` (nT, ...), of ``logt_mean`` (dex) and of
        ``total_em`` (cm^-5): the standard deviation over re-solves with the data perturbed by
        their errors (``BasisPursuit.solve(..., n_samples=N)``; for the total EM in quadrature
        with :data:`TOTAL_EM_MODEL_REL` of it); None when not asked for, NaN
        where the pixel failed or fewer than two draws were feasible.
    mc_feasible : ndarray or None
        Fraction of the Monte-Carlo draws that were feasible at the pixel's tolfac.
    mc_samples, mc_seed : int
        Draws per pixel and seed of the Monte-Carlo estimate (0 and 0 without one).
    errors_precision : str or None
        DeepEM's error bars: the precision the noise went through the network in (``"bf16"``
        or ``"fp32"``); None otherwise.
    header : astropy.io.fits.Header or None
        The input's celestial WCS keywords (set by the pipelines), for :meth:`to_ndcube`.
    """

    em: np.ndarray
    coeffs: Optional[np.ndarray]
    status: np.ndarray
    tolfac: np.ndarray
    objective: np.ndarray
    model: np.ndarray
    chi2: np.ndarray
    iterations: np.ndarray
    logt: np.ndarray
    em_err: Optional[np.ndarray] = None
    logt_err: Optional[np.ndarray] = None
    total_em_err: Optional[np.ndarray] = None
    mc_feasible: Optional[np.ndarray] = None
    mc_samples: int = 0
    mc_seed: int = 0
    header: Optional[object] = None
    errors_precision: Optional[str] = None

    def to_ndcube(self, header=None):
        """This map result as an ``ndcube.NDCube`` (see :func:`fastinv.dem.cube.to_ndcube`).

        Parameters
        ----------
        header : astropy.io.fits.Header, optional
            The input's celestial WCS keywords; default ``self.header`` (set by
            ``run_bp``/``run_deepem`` and the series runs).
        """
        from .cube import to_ndcube

        hdr = self.header if header is None else header
        if hdr is None:
            raise ValueError("this result has no WCS header: pass to_ndcube(header=obs.header)")
        return to_ndcube(self, hdr)

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of solved pixels (status 0)."""
        return self.status == 0

    @property
    def total_em(self) -> np.ndarray:
        """Total EM (cm^-5) over the grid."""
        return self.em.sum(axis=0)

    @property
    def logt_mean(self) -> np.ndarray:
        """EM-weighted mean log T (NaN where the EM is 0)."""
        tot = self.total_em
        w = np.tensordot(self.logt, self.em, axes=(0, 0))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(tot > 0, w / np.where(tot > 0, tot, 1.0), np.nan)


class BasisPursuit:
    """Basis Pursuit DEM inversion with Cheung et al. (2015) / SSW V1.001 defaults.

    Parameters
    ----------
    response : str, path, TemperatureResponse or ndarray, optional
        Temperature responses: a shipped table name (default ``"aia_v10_eve"``), a CSV path,
        a :class:`TemperatureResponse`, or an array (nchan, nT) already sampled on ``logt``
        in DN cm^5 s^-1 pixel^-1.
    logt : array_like, optional
        log T bin centres; default 5.5 ... 7.5 step 0.1 (21 bins). ``DEEPEM_LOGT`` gives the
        18-bin 5.5 ... 7.2 grid of DeepEM.
    widths : sequence of float
        Gaussian widths w of exp(-((logT - logT_m)/w)^2) (a width, not a standard deviation),
        in addition to the Dirac basis. Default (0.1, 0.2, 0.6): 84 columns on 21 bins.
    tolfac : float
        eta = tolfac * sigma. Default 1.4.
    adaptive : bool
        Retry failed pixels with tolfac x1.5 and x2.25 (SSW ``adaptive_tolfac``). Default on.
    max_iterations : int
        Simplex iterations per LP before "not converged".
    warm_start : bool
        Start each pixel from the previous pixel's optimal basis (in blocks of 64 pixels, so
        results do not depend on the thread count). Optima are the same; with degenerate
        optima the coefficients may differ from a cold start.

    Examples
    --------
    >>> import numpy as np
    >>> from fastinv.dem import BasisPursuit
    >>> bp = BasisPursuit()
    >>> bp.dictionary.shape, bp.basis.shape
    ((6, 84), (84, 21))
    >>> em_true = np.zeros(21); em_true[8] = 1e27            # 1e27 cm^-5 at log T = 6.3
    >>> y = bp.response_on_grid @ em_true                    # DN/s
    >>> res = bp.solve(y[:, None], exptime=2.0)
    >>> int(res.status[0]), bool(abs(res.logt_mean[0] - 6.3) < 0.1)
    (0, True)
    """

    def __init__(
        self,
        response: Union[str, "TemperatureResponse", np.ndarray, None] = None,
        logt: Optional[Sequence[float]] = None,
        widths: Sequence[float] = (0.1, 0.2, 0.6),
        tolfac: float = 1.4,
        adaptive: bool = True,
        max_iterations: int = 400,
        warm_start: bool = True,
    ) -> None:
        # what pickling sends instead of the solver (see __reduce__)
        self._recipe = (response, logt, tuple(widths), tolfac, adaptive, max_iterations, warm_start)
        grid = DEFAULT_LOGT if logt is None else np.asarray(logt, dtype=np.float64)
        if grid.ndim != 1 or grid.size < 2:
            raise ValueError("logt must be a 1-d grid with at least 2 bins")
        widths = tuple(float(w) for w in widths)
        if any(not np.isfinite(w) or w <= 0 for w in widths):
            raise ValueError("widths must be finite and > 0 (the Dirac basis is always included)")
        if not (np.isfinite(tolfac) and tolfac > 0):
            raise ValueError("tolfac must be finite and > 0")
        if isinstance(response, np.ndarray):
            k = np.asarray(response, dtype=np.float64)
            if k.ndim != 2 or k.shape[1] != grid.size:
                raise ValueError(f"a response array must be (nchan, nT={grid.size}) on logt, got {k.shape}")
            self.response_name = "user array"
            self.response_table: Optional[TemperatureResponse] = None
        else:
            table = response if isinstance(response, TemperatureResponse) else load_response(response)
            k = table.at(grid)
            self.response_name = table.name
            self.response_table = table
        self.logt = grid
        self.widths = widths
        self.tolfacs = (tolfac, tolfac * 1.5, tolfac * 2.25) if adaptive else (tolfac,)
        self.tolfac = float(tolfac)
        self.adaptive = bool(adaptive)
        #: Responses on the grid, (nchan, nT), DN cm^5 s^-1 pixel^-1.
        self.response_on_grid = k
        #: Basis functions (ncoef, nT): Dirac block, then one block per width.
        self.basis = np.asarray(_core.dem.basis(grid, [0.0, *widths], 0.04))
        #: Dictionary D (nchan, ncoef) in DN s^-1 per 1e26 cm^-5.
        self.dictionary = np.asarray(_core.dem.dictionary(k, self.basis, DICTFAC))
        self._solver = _core.dem.BasisPursuit(
            self.dictionary, list(self.tolfacs), 0.01, int(max_iterations), bool(warm_start)
        )
        self._solver.set_basis(self.basis, DICTFAC)

    def __reduce__(self):
        # Tasks of a dask graph carry the constructor's arguments; each worker process builds
        # the solver once (fastinv._dask.cached_instance) and reuses it.
        key = _dask.recipe_key("BasisPursuit", self._recipe)
        return (_dask.cached_instance, (key, BasisPursuit, *self._recipe))

    @property
    def nchan(self) -> int:
        return self.dictionary.shape[0]

    @property
    def ncoef(self) -> int:
        return self.dictionary.shape[1]

    def sigma(self, y, exptime, n_sample: float = 1.0) -> np.ndarray:
        """AIA error model in DN/s for data ``y`` (DN/s) taken with ``exptime`` (s).

        ``exptime`` is a scalar or one value per channel (shape (6,) or broadcastable).
        """
        yv = to_float_array(y, "DN/s", "y")
        t = to_float_array(exptime, "s", "exptime")
        if t.ndim == 1 and t.size == yv.shape[0]:
            t = t.reshape((-1,) + (1,) * (yv.ndim - 1))
        if np.any(~np.isfinite(t)) or np.any(t <= 0):
            raise ValueError("exptime must be finite and > 0 (seconds)")
        return aia_error(yv * t, n_sample) / t

    def solve(
        self,
        y,
        sigma=None,
        exptime=None,
        threads: Optional[int] = None,
        n_sample: float = 1.0,
        n_samples: int = 0,
        seed: int = 0,
        first_pixel: int = 0,
    ) -> BPResult:
        """Invert every pixel.

        Parameters
        ----------
        y : array_like, Quantity or dask array, shape (nchan, ...)
            Data in DN s^-1 pixel^-1, channels 94, 131, 171, 193, 211, 335. A dask array
            (``y`` or ``sigma``) gives a result of lazy dask arrays, solved blockwise over
            pixels (``fastinv._dask``; one thread per task unless ``threads`` says otherwise),
            bitwise equal to the NumPy result.
        sigma : array_like, optional
            1-sigma errors in DN s^-1, same shape as ``y``. If omitted, the AIA error model
            is used with ``exptime`` (and ``n_sample``).
        exptime : float, array_like or Quantity, optional
            Exposure time(s) in s, scalar or one per channel; needed when ``sigma`` is None.
        threads : int, optional
            OpenMP threads (default: all).
        n_sample : float
            Pixels summed/averaged per value (N*N after N x N binning), for the error model.
        n_samples : int
            Monte-Carlo error estimate: re-solve every solved pixel this many times with its
            data perturbed by ``sigma`` (Gaussian; negative values set to 0), at the tolfac
            that solved it, each draw warm-started from the last; fills ``em_err``, ``logt_err``,
            ``total_em_err`` and ``mc_feasible``. 0 (default): no estimate. The pixel's own
            solution is the same either way.
        seed : int
            Seed of the draws; each pixel's draws depend on (seed, pixel index) only, so the
            errors are bitwise identical for any thread count.
        first_pixel : int
            Index of this call's first pixel in a larger image solved in parts (the pixel
            index of the draws), so the parts' errors equal those of one call.

        Returns
        -------
        BPResult
            Of NumPy arrays, or of dask arrays for a dask input.

        Examples
        --------
        >>> import numpy as np
        >>> from fastinv.dem import BasisPursuit
        >>> bp = BasisPursuit()
        >>> y = bp.dictionary @ np.eye(bp.ncoef)[:, 30] * 50  # one Dirac DEM at log T 6.4
        >>> res = bp.solve(y[:, None], exptime=2.0, n_samples=50, seed=1)
        >>> bool(res.logt_err[0] < 0.1), float(res.mc_feasible[0]) > 0.5
        (True, True)
        """
        if _dask.is_dask_array(y) or _dask.is_dask_array(sigma):
            return self._solve_dask(y, sigma, exptime, threads, n_sample, n_samples, seed, first_pixel)
        yv = to_float_array(y, "DN/s", "y")
        if yv.ndim < 1 or yv.shape[0] != self.nchan:
            raise ValueError(f"y must have shape ({self.nchan}, ...) (channels {AIA_CHANNELS}), got {yv.shape}")
        if sigma is None:
            if exptime is None:
                raise ValueError("give sigma (DN/s) or exptime (s) so the AIA error model can be used")
            if self.nchan != 6:
                raise ValueError("the AIA error model needs the 6 AIA channels; pass sigma")
            with np.errstate(invalid="ignore"):
                sv = self.sigma(np.where(np.isfinite(yv), yv, 0.0), exptime, n_sample)
            sv = np.where(np.isfinite(yv), sv, np.nan)
        else:
            sv = to_float_array(sigma, "DN/s", "sigma")
            if sv.shape != yv.shape:
                sv = np.broadcast_to(sv, yv.shape)
        shape = yv.shape[1:]
        y2 = np.ascontiguousarray(yv.reshape(self.nchan, -1))
        s2 = np.ascontiguousarray(sv.reshape(self.nchan, -1))
        # model = D coeffs and em = B^T coeffs * 1e26 come from C++ (from the <= nchan
        # nonzero coefficients of each pixel)
        if int(n_samples) != n_samples or n_samples < 0:
            raise ValueError(f"n_samples must be an integer >= 0, got {n_samples!r}")
        if int(seed) != seed or not 0 <= seed < 2**64:
            raise ValueError(f"seed must be an integer in [0, 2**64), got {seed!r}")
        coeffs, status, tolfac, objective, iters, model, em, errors = self._solver.solve(
            y2, s2, int(threads) if threads else 0, int(n_samples), int(seed), int(first_pixel), self.logt
        )
        with np.errstate(invalid="ignore", divide="ignore"):
            r = (model - np.maximum(y2, 0.0)) / s2
            chi2 = np.where(status == 0, np.sum(r * r, axis=0), np.nan)
        return BPResult(
            em=em.reshape((-1,) + shape),
            coeffs=coeffs.reshape((-1,) + shape),
            status=status.reshape(shape),
            tolfac=tolfac.reshape(shape),
            objective=objective.reshape(shape),
            model=model.reshape((-1,) + shape),
            chi2=chi2.reshape(shape),
            iterations=iters.reshape(shape),
            logt=self.logt.copy(),
            **(
                {}
                if errors is None
                else dict(
                    em_err=errors[0].reshape((-1,) + shape),
                    logt_err=errors[1].reshape(shape),
                    total_em_err=np.hypot(errors[2], TOTAL_EM_MODEL_REL * em.sum(axis=0)).reshape(shape),
                    mc_feasible=errors[3].reshape(shape),
                    mc_samples=int(n_samples),
                    mc_seed=int(seed),
                )
            ),
        )

    def _solve_dask(self, y, sigma, exptime, threads, n_sample, n_samples, seed, first_pixel) -> BPResult:
        """:meth:`solve` blockwise over the pixels of a dask array (lazy)."""
        if y.ndim < 1 or y.shape[0] != self.nchan:
            raise ValueError(f"y must have shape ({self.nchan}, ...) (channels {AIA_CHANNELS}), got {y.shape}")
        if sigma is None and exptime is None:
            raise ValueError("give sigma (DN/s) or exptime (s) so the AIA error model can be used")
        if sigma is not None:
            da = require("dask.array", "dask arrays")
            sigma = da.broadcast_to(da.asarray(sigma), y.shape)
        block = functools.partial(
            _solve_block,
            self,
            exptime=None if exptime is None else to_float_array(exptime, "s", "exptime"),
            threads=threads or 1,
            n_sample=n_sample,
            n_samples=n_samples,
            seed=seed,
            offset=int(first_pixel),
        )
        out = _dask.map_pixels(block, [y, sigma], tuple(y.shape[1:]))
        mc = dict(mc_samples=int(n_samples), mc_seed=int(seed)) if n_samples else {}
        return BPResult(logt=self.logt.copy(), **{"coeffs": None, **out}, **mc)


#: BPResult's per-pixel arrays (the rest are the grid and scalars).
_PIXEL_FIELDS = (
    "em",
    "coeffs",
    "status",
    "tolfac",
    "objective",
    "model",
    "chi2",
    "iterations",
    "em_err",
    "logt_err",
    "total_em_err",
    "mc_feasible",
)


def _solve_block(bp: BasisPursuit, y, sigma, *, first_pixel: int, offset: int, **kwargs) -> dict:
    """One dask task: ``bp.solve`` on a block of pixels, its arrays by name."""
    res = bp.solve(y, sigma, first_pixel=offset + first_pixel, **kwargs)
    return {name: getattr(res, name) for name in _PIXEL_FIELDS if getattr(res, name) is not None}
