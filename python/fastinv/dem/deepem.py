"""DeepEM (Wright et al. 2018): AIA DEMs from a per-pixel network, run by fastinv's engine.

The shipped model (``fastinv/data/deepem.safetensors``, card beside it) was trained by
:mod:`fastinv.train.deepem` on fastinv's Basis Pursuit solutions of the 2014-01-01 AIA
synoptic set. Inference needs only numpy: the network runs in fastinv's C++ kernels.

Examples
--------
>>> from fastinv.dem import DeepEM
>>> from fastinv.dem.io import read_aia
>>> from fastinv import datasets
>>> obs = read_aia(datasets.aia_flare_files())
>>> res = DeepEM.load().invert(obs.data, exptime=obs.exptime)
>>> res.em.shape
(21, 67, 67)
"""

from __future__ import annotations

import functools
import json
import os
from importlib import resources
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .. import _core, _dask
from .._optional import require
from .._units import to_float_array
from ..model import Model
from ..status import OK
from .basis_pursuit import DEEPEM_LOGT, BPResult, aia_error
from .response import load_response

#: DEM_STATUS code of a pixel with a NaN/inf input (the code Basis Pursuit uses).
BAD_INPUT = 12
#: DEM_STATUS code of a pixel whose EM or re-synthesis is not finite (float32 overflow).
OVERFLOW = 13
#: DEM_STATUS code of a pixel that ``invert(..., refine=True)`` cannot fit: no EM >= 0 on the
#: network's grid reproduces the data within Basis Pursuit's band at any adaptive tolfac.
REFINE_INFEASIBLE = 14


#: The DeepEM models that ship with fastinv, by name: the paper's 18-bin grid (log T
#: 5.5..7.2) and BP's default 21-bin grid (5.5..7.5, trained with hot synthetic pixels).
SHIPPED_MODELS = {"deepem18": "deepem.safetensors", "deepem21": "deepem21.safetensors"}
#: The model :meth:`DeepEM.load` gives by default: the 21-bin one, closer to BP on the held-out
#: flare series (its card's ``selection`` records the measurement).
DEFAULT_MODEL = "deepem21"


def shipped_model_path(name: Optional[str] = None) -> Path:
    """Path of a DeepEM model that ships with fastinv (default :data:`DEFAULT_MODEL`)."""
    name = DEFAULT_MODEL if name is None else name
    if name not in SHIPPED_MODELS:
        raise ValueError(f"unknown DeepEM model {name!r}; shipped: {', '.join(SHIPPED_MODELS)}")
    return Path(str(resources.files("fastinv") / "data" / SHIPPED_MODELS[name]))


class DeepEM:
    """A trained DeepEM network (6 AIA channels -> EM in the log T bins of its card).

    Parameters
    ----------
    model : fastinv.Model
        The loaded network; its metadata must hold the model card (``fastinv.card``).
    """

    def __init__(self, model: Model):
        card_text = model.metadata.get("fastinv.card")
        if card_text is None:
            raise ValueError(f"{model.path}: not a DeepEM model (no fastinv.card metadata)")
        self.card = json.loads(card_text)
        if (
            self.card.get("input", {}).get("transform") != "sqrt(max(I, 0))"
            or self.card.get("output", {}).get("transform") != "EM = 1e25 * y**2"
        ):
            raise ValueError(f"{model.path}: the model card does not describe DeepEM's normalisation")
        self.logt = np.asarray(self.card["output"].get("logt", DEEPEM_LOGT), dtype=np.float64)
        if model.layout != "nchw" or model.input_shape != (6,) or model.output_shape != (len(self.logt),):
            raise ValueError(
                f"{model.path}: expected a per-pixel 6 -> {len(self.logt)} network (the card's log T grid)"
            )
        self.model = model
        self._response = load_response(self.card.get("labels", {}).get("response"))
        self._kernel32 = np.ascontiguousarray(self._response.at(self.logt).astype(np.float32))  # (6, nT)
        # CPU models run the pre/post-processing fused into the engine's tile loop (C++);
        # other devices use the NumPy path, which is also the fused path's test reference.
        self._fused = model.info()["device"] == "cpu"
        self._sha256: Optional[str] = None  # of the model file, computed when first pickled
        # The C++ error model per precision ("auto", "fp32", "bf16"), built on first use: its
        # packed Jacobian tables cost ~6 ms, which every frame of a series would pay otherwise.
        self._error_models: dict = {}

    def __reduce__(self):
        # Tasks of a dask graph carry the model's path and SHA-256; each worker process loads
        # the file once (fastinv._dask.cached_instance) and checks it is the same file.
        path = str(self.model.path)
        if self._sha256 is None:
            self._sha256 = _dask.file_sha256(path)
        device = self.model.info()["device"]
        key = ("DeepEM", path, self._sha256, device, self.model.precision)
        return (_dask.cached_instance, (key, _load_verified, path, self._sha256, device, self.model.precision))

    @classmethod
    def load(
        cls, path: Union[str, os.PathLike, None] = None, threads: Optional[int] = None, precision: str = "fp32"
    ) -> "DeepEM":
        """Load a DeepEM model: a file, or a shipped model's name (:data:`SHIPPED_MODELS`:
        ``"deepem18"``, ``"deepem21"``); default :data:`DEFAULT_MODEL`.

        ``precision="bf16"`` runs the network on the CPU's bf16 kernels (bf16 weights and
        layer inputs, float32 sums; the pre- and post-processing stay float32): 2x faster
        with AMX-BF16 (Sapphire Rapids and later). Total EM and EM-weighted log T change by
        <= 0.5 %, but single bins' EM by ~1 % typically and up to ~10 %: keep fp32 for
        per-bin DEM science (docs/cpu-engine.md). ``DeepEM(fastinv.load(path,
        precision="bf16"))`` is the same. ``precision="bf16x2"`` keeps the bf16 layer inputs
        but gives each weight two bf16 terms (hi + lo; twice the bf16 products): on the
        held-out flare series every per-bin metric stays within 1 % of fp32's, still well
        ahead of fp32 in speed (README, docs/cpu-engine.md). The default stays ``"fp32"``.
        A CPU without AVX512-BF16 raises RuntimeError naming the missing feature.

        Examples
        --------
        On a CPU with AVX512-BF16:

        >>> fast = DeepEM.load(precision="bf16")  # doctest: +SKIP
        >>> science = DeepEM.load(precision="bf16x2")  # doctest: +SKIP
        """
        if path is None or (isinstance(path, str) and path in SHIPPED_MODELS):
            path = shipped_model_path(path)
        return cls(Model(path, threads=threads, precision=precision))

    @property
    def response_name(self) -> str:
        return self._response.name

    def invert(
        self,
        y,
        exptime=None,
        sigma=None,
        n_sample: float = 1.0,
        threads: Optional[int] = None,
        out: Optional[BPResult] = None,
        refine: bool = False,
        errors: Union[bool, str] = False,
    ) -> BPResult:
        """DEMs of every pixel.

        Parameters
        ----------
        y : array_like, Quantity or dask array, shape (6, ...)
            DN s^-1 pixel^-1 in the channel order 94, 131, 171, 193, 211, 335. A dask array
            gives a result of lazy dask arrays, run blockwise over pixels (one thread per
            task unless ``threads`` says otherwise), bitwise equal to the NumPy result.
        exptime, sigma, n_sample :
            Only for ``chi2``: errors from the AIA error model (as :class:`BasisPursuit`)
            or given directly. Without either, ``chi2`` is NaN.
        threads : int, optional
            Threads for the network.
        out : BPResult, optional
            A previous result of this method for a frame of the same shape: its arrays are
            overwritten and returned (CPU models), so a series of frames reuses one set of
            buffers instead of faulting in ~110 bytes of fresh memory per pixel each time
            (~200 with ``errors``: a previous result with errors lends its error arrays too).
        refine : bool
            Replace each pixel's EM by the one closest to the network's (weighted L1 distance
            sum_t |EM_t - EM_net_t| / (EM_net_t + 0.01 max EM_net)) that satisfies Basis
            Pursuit's constraints exactly: EM >= 0 and max(y - tolfac sigma, 0) <= K EM <=
            y + tolfac sigma, with BP's adaptive tolfac (1.4, then 2.1, then 3.15) and BP's
            sigma (``exptime``/``n_sample`` or ``sigma``, one of which is then required). An LP
            per pixel in C++, started at the network's EM (pixels it already fits keep their
            EM bitwise). Where no such EM exists the status is 14 (:data:`REFINE_INFEASIBLE`),
            11 for no counts (sum of y < 0.01 DN/s), 3 if not converged; those pixels and bad
            input (12) get NaN products. ``tolfac`` is then the one used and ``iterations``
            the simplex iterations.
        errors : bool
            Also the calibrated 1-sigma errors ``em_err``, ``logt_err`` (of ``logt_mean``, dex)
            and ``total_em_err`` (cm^-5), computed in the same tile loop: the data's noise
            (``sigma``, or the AIA error model with ``exptime``; one of them is needed)
            propagated through the network by its Jacobian, in quadrature with the network's
            own error from the model card (``card["errors"]``, fitted on held-out synthetic
            DEMs). NaN wherever ``status`` != 0. CPU models only (NumPy or dask input).
            ``True``: where the card gives reference inputs (``errors.reference_inputs``, the
            shipped models' do), the float32 Jacobian formed from the units whose LeakyReLU
            slopes differ from the nearest reference's -- exact, a fraction of the dense chain's
            arithmetic; otherwise in bfloat16 on the AMX-BF16 / AVX512-BF16 kernels where the
            CPU has them (sigma within ~1 % of float32's), else the dense float32 chain.
            ``"fp32"`` forces float32 (from the references where there are any), ``"bf16"`` the
            bfloat16 one (an error on a CPU without AVX512-BF16). docs/deepem-errors.md has
            the costs.

        Returns
        -------
        BPResult
            ``em`` (nT, ...) on the model's ``logt`` bins, in cm^-5 per bin (float32),
            ``model`` = K @ em (re-synthesised DN s^-1),
            ``chi2``, ``status`` 0 wherever all six inputs are finite (12 elsewhere, EM 0).
            ``coeffs`` has zero rows (DeepEM has no basis), ``tolfac`` is NaN and
            ``iterations`` 0; ``objective`` is the total EM in units of 1e26 cm^-5.
        """
        if errors not in (False, True, "fp32", "bf16"):
            raise ValueError(f"errors must be True, False, 'fp32' or 'bf16', got {errors!r}")
        if errors:
            if "errors" not in self.card:
                raise ValueError(f"{self.model.path}: this model's card has no calibrated errors ('errors' section)")
            if sigma is None and exptime is None:
                raise ValueError("errors=True needs the data's noise: pass exptime (AIA error model) or sigma")
            if not self._fused:
                raise ValueError("errors=True needs a model on the CPU")
        if _dask.is_dask_array(y) or _dask.is_dask_array(sigma):
            if out is not None:
                raise ValueError("out= is for NumPy input; a dask input gives dask arrays")
            return self._invert_dask(y, exptime, sigma, n_sample, threads, refine, errors)
        if hasattr(y, "unit"):
            y = to_float_array(y, "DN/s", "y")
        yv = np.asarray(y)
        if not (np.issubdtype(yv.dtype, np.integer) or np.issubdtype(yv.dtype, np.floating)):
            raise TypeError(f"y must be real numbers (DN/s), got {yv.dtype} values")
        if yv.ndim < 1 or yv.shape[0] != 6:
            raise ValueError(f"y must have shape (6, ...) in channel order 94..335 A, got {yv.shape}")
        if not self._fused:
            if out is not None:
                raise ValueError("out= needs a model loaded on the CPU")
            return self._invert_numpy(yv, exptime, sigma, n_sample, threads, refine)
        shape = yv.shape[1:]
        flat = yv.reshape(6, -1)  # a view whenever the pixel axes can be flattened
        if flat.dtype not in (np.float32, np.float64):
            flat = flat.astype(np.float64)
        sig = t = None
        if sigma is not None:
            sig = np.asarray(to_float_array(sigma, "DN/s", "sigma"), dtype=np.float64).reshape(6, -1)
            if sig.shape[1] not in (1, flat.shape[1]):
                raise ValueError(f"sigma must have shape (6, ...) like y {yv.shape} or (6, 1), got {np.shape(sigma)}")
            sig = np.broadcast_to(sig, flat.shape)
        elif exptime is not None:
            t = np.asarray(to_float_array(exptime, "s", "exptime"), float).reshape(-1)
            if t.size not in (1, 6):
                raise ValueError(f"exptime must be one value or six (one per channel), got {t.size}")
            t = np.broadcast_to(t, (6,)).copy()
        elif refine:
            raise ValueError("refine=True needs the data's errors: give exptime (s) or sigma (DN/s)")
        bufs = None
        if out is not None:
            bufs = []
            names = [("em", len(self.logt)), ("model", 6), ("status", 0), ("chi2", 0), ("objective", 0), ("tolfac", 0)]
            if errors and getattr(out, "em_err", None) is not None:  # a result with errors: reuse those too
                names += [("em_err", len(self.logt)), ("logt_err", 0), ("total_em_err", 0)]
            for name, rows in names:
                a = getattr(out, name, None)
                if not isinstance(a, np.ndarray):
                    raise ValueError(f"out must be a DeepEM.invert result; out.{name} is not an array")
                v = a.view()
                try:  # flat views of the previous result's arrays; never a silent copy
                    v.shape = (rows, -1) if rows else (-1,)
                except (AttributeError, ValueError) as exc:
                    raise ValueError(
                        f"out.{name} cannot be viewed as ({rows or ''}npix) without a copy; pass a "
                        f"previous DeepEM.invert result for a frame of the same shape"
                    ) from exc
                bufs.append(v)
            bufs = tuple(bufs)
        iterations = np.zeros(flat.shape[1], np.int32)
        error_model = self._error_model("auto" if errors is True else errors) if errors else None
        arrays = _core.dem.deepem_invert(
            self.model._core,
            flat,
            self._kernel32,
            sig,
            t,
            float(n_sample),
            self.model.threads if threads is None else int(threads),
            bufs,
            refine=bool(refine),
            refine_iterations=iterations if refine else None,
            errors=error_model,
        )
        em, model, status, chi2, objective, tolfac = arrays[:6]
        err = {}
        if errors:
            err = dict(
                em_err=arrays[6].reshape((len(self.logt), *shape)),
                logt_err=arrays[7].reshape(shape),
                total_em_err=arrays[8].reshape(shape),
                errors_precision=error_model.precision,
            )
        return BPResult(
            em=em.reshape((len(self.logt), *shape)),
            coeffs=np.zeros((0, *shape)),
            status=status.reshape(shape),
            tolfac=tolfac.reshape(shape),
            objective=objective.reshape(shape),
            model=model.reshape((6, *shape)),
            chi2=chi2.reshape(shape),
            iterations=iterations.reshape(shape),
            logt=self.logt.copy(),
            **err,
        )

    def _error_model(self, precision: str):
        """The C++ error model for ``precision`` ("auto", "fp32", "bf16"), built once per model."""
        if precision not in self._error_models:  # two threads racing here only build it twice
            self._error_models[precision] = _core.dem.DeepEmErrorModel(self.model._core, self.logt, precision)
        return self._error_models[precision]

    def _invert_dask(
        self, y, exptime, sigma, n_sample: float, threads: Optional[int], refine: bool, errors: Union[bool, str]
    ) -> BPResult:
        """:meth:`invert` blockwise over the pixels of a dask array (lazy)."""
        if y.ndim < 1 or y.shape[0] != 6:
            raise ValueError(f"y must have shape (6, ...) in channel order 94..335 A, got {y.shape}")
        if sigma is not None:
            da = require("dask.array", "dask arrays")
            sigma = da.broadcast_to(da.asarray(sigma), y.shape)
        block = functools.partial(
            _invert_block,
            self,
            exptime=None if exptime is None else to_float_array(exptime, "s", "exptime"),
            n_sample=n_sample,
            threads=threads or 1,
            refine=refine,
            errors=errors,
        )
        return BPResult(logt=self.logt.copy(), **_dask.map_pixels(block, [y, sigma], tuple(y.shape[1:])))

    def _invert_numpy(
        self, yv: np.ndarray, exptime, sigma, n_sample: float, threads: Optional[int], refine: bool = False
    ) -> BPResult:
        """The NumPy pre/post-processing around the network (non-CPU models; test reference)."""
        if refine and sigma is None and exptime is None:
            raise ValueError("refine=True needs the data's errors: give exptime (s) or sigma (DN/s)")
        shape = yv.shape[1:]
        # float32 in place, no float64 copy: the network's own precision, and a 16.8 M-pixel
        # frame's pre/post-processing stays small next to the network
        x = yv.reshape(6, -1).astype(np.float32)
        finite = np.isfinite(x).all(axis=0)
        np.maximum(x, 0.0, out=x)
        np.sqrt(x, out=x)
        em = self.model(x[:, None, :], threads=threads)[:, 0, :]  # (nT, npix) float32
        with np.errstate(over="ignore", invalid="ignore"):  # overflow: status OVERFLOW below
            np.square(em, out=em)
            em *= np.float32(1e25)
        if not finite.all():
            em[:, ~finite] = 0.0
        iterations = np.zeros(x.shape[1], np.int32)
        if refine:  # the fused loop's refinement, run on its own (C++)
            refine_status, refine_tolfac, iterations = self._refine(em, yv.reshape(6, -1), exptime, sigma, n_sample)
        with np.errstate(over="ignore", invalid="ignore"):
            model = self._kernel32 @ em
            total = em.sum(axis=0)
        # the C++ path's rule: an input near float32's limit squares to inf, a failure
        overflow = ~np.isfinite(total) | ~np.isfinite(model).all(axis=0)
        em[:, overflow] = np.nan
        model[:, overflow] = np.nan
        total[overflow] = np.nan
        status = np.where(finite, np.where(overflow, OVERFLOW, OK), BAD_INPUT).astype(np.int8)
        if refine:
            status = np.where(finite & (refine_status != OK), refine_status, status).astype(np.int8)
        chi2 = np.full(x.shape[1], np.nan)
        if sigma is not None or exptime is not None:
            flat = yv.reshape(6, -1).astype(np.float64)
            if sigma is not None:
                sig = to_float_array(sigma, "DN/s", "sigma").reshape(6, -1)
            else:
                t = np.broadcast_to(np.asarray(to_float_array(exptime, "s", "exptime"), float).reshape(-1, 1), (6, 1))
                sig = aia_error(np.maximum(np.where(finite, flat, 0.0), 0.0) * t, n_sample) / t
            with np.errstate(invalid="ignore", divide="ignore"):
                chi2 = np.where(
                    finite & ~overflow, np.sum(((model - np.maximum(flat, 0.0)) / sig) ** 2, axis=0), np.nan
                )
        return BPResult(
            em=em.reshape((len(self.logt), *shape)),
            coeffs=np.zeros((0, *shape)),
            status=status.reshape(shape),
            tolfac=(refine_tolfac if refine else np.full(x.shape[1], np.nan)).reshape(shape),
            objective=(total / np.float32(1e26)).reshape(shape),
            model=model.reshape((6, *shape)),
            chi2=chi2.reshape(shape),
            iterations=iterations.reshape(shape),
            logt=self.logt.copy(),
        )

    def _refine(self, em: np.ndarray, y: np.ndarray, exptime, sigma, n_sample: float):
        """Refine em (nT, npix) float32 in place; returns (status, tolfac, iterations)."""
        sig = t = None
        if sigma is not None:
            sig = np.broadcast_to(
                np.asarray(to_float_array(sigma, "DN/s", "sigma"), np.float64).reshape(6, -1), y.shape
            )
        else:
            t = np.broadcast_to(np.asarray(to_float_array(exptime, "s", "exptime"), float).reshape(-1), (6,)).copy()
        return _core.dem.deepem_refine(self._kernel32, em, y, sig, t, float(n_sample), self.model.threads)

    def fits_cards(self) -> dict:
        """Provenance keywords for FITS headers of DeepEM results."""
        return {
            "CONTENT": "DEM: DeepEM (Wright et al. 2018), fastinv engine",
            "FI_METH": ("deepem", f"per-pixel network 6-300-300-{len(self.logt)}"),
            "FI_MODEL": (Path(self.model.path).name, "model file"),
            "FI_MVERS": (self.card.get("fastinv_version", "?"), "fastinv version that trained it"),
            "FI_RESP": (self.response_name, "response for re-synthesis / labels"),
            "FI_LABEL": ("basis pursuit", "training labels"),
        }


def _load_verified(path: str, sha256: str, device: str, precision: str = "fp32") -> DeepEM:
    """Load a pickled DeepEM's model file in a worker, refusing a file that has changed."""
    if _dask.file_sha256(path) != sha256:
        raise ValueError(f"{path}: the DeepEM model file changed since the task was made (SHA-256 differs)")
    return DeepEM(Model(path, device=device, precision=precision))


def _invert_block(net: DeepEM, y, sigma, *, first_pixel: int, **kwargs) -> dict:
    """One dask task: ``net.invert`` on a block of pixels, its arrays by name."""
    res = net.invert(y, sigma=sigma, **kwargs)
    names = ("em", "coeffs", "status", "tolfac", "objective", "model", "chi2", "iterations")
    if res.em_err is not None:
        names += ("em_err", "logt_err", "total_em_err")
    return {name: getattr(res, name) for name in names}
