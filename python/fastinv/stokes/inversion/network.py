"""Stokes inversion networks: load a trained model, prepare profiles, decode the atmosphere.

A Stokes model is one ``.safetensors`` file written by :func:`fastinv.export` whose
``fastinv.card`` metadata (JSON) says how to feed and read the network:

- ``wavelength``: the model's input grid [A, air], ``Nλ`` points;
- ``input.stokes``: the Stokes parameters fed as channels (``["I","Q","U","V"]`` or
  ``["I","V"]``), each transformed as ``x[c] = (S[c] / I_c - offset[c]) * scale[c]``;
- ``nodes``: log tau_500 of the output nodes; ``outputs``: quantity names, network output
  column ``q * n_nodes + k`` being quantity ``outputs[q]`` at node ``k``;
- ``output_mean`` / ``output_std``: physical value = network output * std + mean.

Decoding: the azimuth is learnt as (sin 2φ, cos 2φ) (no jump at the 180° ambiguity) and
returned as ``0.5 * atan2(sin 2φ, cos 2φ)`` in [0, 180) deg; the inclination is clipped to
[0, 180] deg and the field strength to >= 0. v_LOS > 0 is a red shift (away from the
observer).

Examples
--------
>>> from fastinv.stokes import StokesNet                         # doctest: +SKIP
>>> net = StokesNet.load(instrument="hinode")                     # doctest: +SKIP
>>> atm = net.predict(profiles)      # (N, 4, 112) I/I_c, Q/I_c, ...  # doctest: +SKIP
>>> atm["temperature"].shape, atm["temperature"].unit               # doctest: +SKIP
((N, 7), Unit("K"))
"""

from __future__ import annotations

import functools
import json
import math
import os
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ... import _dask
from ..._optional import require
from ..._units import to_float_array
from ...model import Model
from ...status import STOKES_STATUS

__all__ = [
    "StokesNet",
    "Resampler",
    "resample_to",
    "default_model_path",
    "STOKES_STATUS",
    "LEVEL2_NAMES",
    "CARD_KEY",
    "DEFAULT_LINES",
    "LINE_MARGIN",
]

#: Metadata key of the model card in the model file.
CARD_KEY = "fastinv.card"

#: fastinv quantity -> DKIST level-2 inversion product name (``mag_strength_los`` and the
#: last two are fastinv's own: DKIST's level-2 list has no line-of-sight field strength).
LEVEL2_NAMES = {
    "temperature": "temperature",
    "vlos": "velocity",
    "B": "mag_strength",
    "inclination": "mag_inclination",
    "azimuth": "mag_azimuth",
    "B_los": "mag_strength_los",
    "vmic": "microturbulence",
    "log_pe": "log_electron_pressure",
}

#: The Fe I 6301.5 / 6302.5 lines the shipped models are trained on (air, A; cards may list
#: others under ``line_wavelengths``), and the margin [A] around them an observation must
#: cover: Zeeman sigma components of 3 kG (0.14 A for g = 2.5) plus Doppler shifts of
#: 10 km/s (0.21 A) stay inside it.
DEFAULT_LINES = (6301.5012, 6302.4936)
LINE_MARGIN = 0.4

_DEFAULT_UNITS = {
    "temperature": "K",
    "vlos": "km/s",
    "B": "G",
    "B_los": "G",
    "inclination": "deg",
    "azimuth": "deg",
    "vmic": "km/s",
    "log_pe": "",
}
_STOKES_INDEX = {"I": 0, "Q": 1, "U": 2, "V": 3}
_INSTRUMENTS = {
    "hinode": "hinode_sp",
    "hinode_sp": "hinode_sp",
    "sp": "hinode_sp",
    "visp": "visp",
    "dkist": "visp",
    "dkist_visp": "visp",
}
_SHIPPED = {"hinode_sp": "stokes_hinode.safetensors", "visp": "stokes_visp.safetensors"}


def instrument_key(name: str) -> str:
    """Canonical instrument name (``"hinode_sp"`` or ``"visp"``) of a user's spelling."""
    key = _INSTRUMENTS.get(str(name).lower())
    if key is None:
        raise ValueError(f"unknown instrument {name!r}: use 'hinode' (Hinode SOT/SP) or 'visp' (DKIST ViSP)")
    return key


def default_model_path(instrument: str = "hinode") -> Path:
    """Path of the model shipped for ``instrument`` (it may not exist in this installation)."""
    return Path(str(resources.files("fastinv") / "data" / _SHIPPED[instrument_key(instrument)]))


# --------------------------------------------------------------------------------------
# resampling onto the model's grid


def _angstrom(value, what: str) -> np.ndarray:
    wl = to_float_array(value, "Angstrom", what).ravel()
    if wl.size < 2 or not np.all(np.isfinite(wl)):
        raise ValueError(f"{what} must hold at least two finite wavelengths")
    return wl


class Resampler:
    """Linear interpolation from an observed wavelength grid onto a model grid.

    The indices and weights are computed once, so applying it to frame after frame costs two
    gathers and a blend. The observed grid must be strictly monotonic and cover the
    ``required`` part of the model grid (default: all of it; :class:`StokesNet` requires its
    spectral lines ± :data:`LINE_MARGIN`), with half an observed step of slack: a model cannot
    invert lines it does not see. Model points beyond the observed window (continuum at the
    grid's edges, e.g. an observed grid offset by a few pixels) take the nearest observed
    value; :attr:`extrapolated` says by how much [A] at each end.

    Parameters
    ----------
    wavelength : array_like or Quantity
        Observed wavelengths (Angstrom if unitless), increasing or decreasing.
    model_wavelength : array_like or Quantity
        The model's grid (Angstrom if unitless).
    required : (float, float), optional
        Wavelength range [A] the observation must cover (default: the whole model grid).

    Raises
    ------
    ValueError
        Grids not monotonic, or the observation does not cover the required range.

    Examples
    --------
    >>> r = Resampler([6300.0, 6301.0, 6302.0, 6303.0], [6300.5, 6302.25])
    >>> r(np.array([0.0, 1.0, 2.0, 3.0]))
    array([0.5 , 2.25], dtype=float32)
    """

    def __init__(self, wavelength, model_wavelength, required: tuple[float, float] | None = None) -> None:
        wl = _angstrom(wavelength, "observed wavelength")
        mw = _angstrom(model_wavelength, "model wavelength")
        d = np.diff(wl)
        if not (np.all(d > 0) or np.all(d < 0)):
            raise ValueError("observed wavelengths must be strictly increasing or decreasing")
        if np.any(np.diff(mw) <= 0):
            raise ValueError("model wavelengths must be strictly increasing")
        order = np.arange(wl.size) if d[0] > 0 else np.arange(wl.size)[::-1]
        ws = wl[order]
        slack = 0.5 * float(np.median(np.abs(d)))
        lo, hi = (float(mw[0]), float(mw[-1])) if required is None else (float(required[0]), float(required[1]))
        if lo < ws[0] - slack or hi > ws[-1] + slack:
            what = "" if required is None else " at least"
            raise ValueError(
                f"the observation covers {ws[0]:.3f}-{ws[-1]:.3f} A but the model needs{what} "
                f"{lo:.3f}-{hi:.3f} A (its spectral lines must be inside the observed window): "
                "use a model trained for this spectral window, or data from the right camera/line"
            )
        #: model-grid extent [A] beyond the observed window (blue end, red end), edge values used
        self.extrapolated = (max(0.0, float(ws[0] - mw[0]) - slack), max(0.0, float(mw[-1] - ws[-1]) - slack))
        self.n_in, self.n_out = wl.size, mw.size
        self.identity = wl.size == mw.size and bool(np.allclose(wl, mw, rtol=0, atol=1e-6))
        j = np.clip(np.searchsorted(ws, mw, side="right") - 1, 0, ws.size - 2)
        w = np.clip((mw - ws[j]) / (ws[j + 1] - ws[j]), 0.0, 1.0)
        self.lo = np.ascontiguousarray(order[j])
        self.hi = np.ascontiguousarray(order[j + 1])
        self.w_hi = w.astype(np.float32)
        self.w_lo = (1.0 - w).astype(np.float32)
        self._scratch: np.ndarray | None = None

    def __call__(self, spectra: np.ndarray, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
        """Interpolate ``spectra`` along ``axis`` (float32 result; into ``out`` when given)."""
        spectra = np.asarray(spectra)
        axis = axis % spectra.ndim
        if spectra.shape[axis] != self.n_in:
            raise ValueError(
                f"spectra have {spectra.shape[axis]} wavelengths along axis {axis}, the observed grid has {self.n_in}"
            )
        shape = list(spectra.shape)
        shape[axis] = self.n_out
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif out.shape != tuple(shape):
            raise ValueError(f"out has shape {out.shape}, expected {tuple(shape)}")
        if self.identity:
            np.copyto(out, spectra, casting="unsafe")
            return out
        bshape = [1] * spectra.ndim
        bshape[axis] = self.n_out
        # the upper neighbours go to a scratch array kept between calls (frame-by-frame use)
        if self._scratch is None or self._scratch.shape != tuple(shape):
            self._scratch = np.empty(shape, dtype=np.float32)
        for idx, dst in ((self.lo, out), (self.hi, self._scratch)):
            if spectra.dtype == np.float32 and out.flags.c_contiguous:
                np.take(spectra, idx, axis=axis, out=dst, mode="clip")  # valid indices; "clip" avoids a buffer
            else:
                np.copyto(dst, np.take(spectra, idx, axis=axis), casting="unsafe")
        out *= self.w_lo.reshape(bshape)
        self._scratch *= self.w_hi.reshape(bshape)
        out += self._scratch
        return out


def resample_to(
    stokes, wavelength, model_wavelength, axis: int = -1, required: tuple[float, float] | None = None
) -> np.ndarray:
    """Linearly interpolate ``stokes`` from ``wavelength`` onto ``model_wavelength``.

    Parameters
    ----------
    stokes : array_like
        Spectra; the wavelength runs along ``axis``.
    wavelength, model_wavelength : array_like or Quantity
        Observed and model grids (Angstrom if unitless).
    required : (float, float), optional
        Range [A] the observation must cover (default: all of the model grid); model
        points outside the observation take the nearest observed value.

    Returns
    -------
    numpy.ndarray, float32

    Raises
    ------
    ValueError
        The observed grid does not cover the model's (see :class:`Resampler`).

    Examples
    --------
    >>> resample_to([[1.0, 3.0, 5.0]], [6301.0, 6302.0, 6303.0], [6301.5, 6302.5])
    array([[2., 4.]], dtype=float32)
    """
    return Resampler(wavelength, model_wavelength, required)(np.asarray(stokes), axis=axis)


# --------------------------------------------------------------------------------------
# the network


def _card_error(path: str, msg: str) -> ValueError:
    return ValueError(f"{path}: not a usable fastinv Stokes model: {msg}")


def _validate_card(card: Any, model: Model, path: str) -> dict:
    if not isinstance(card, dict):
        raise _card_error(path, "the model card is not a JSON object")
    if card.get("kind") != "fastinv.stokes":
        raise _card_error(
            path, f"card kind is {card.get('kind')!r}, expected 'fastinv.stokes' (is this a DeepEM or other model?)"
        )
    for key in ("wavelength", "input", "nodes", "outputs", "output_mean", "output_std", "instrument"):
        if key not in card:
            raise _card_error(path, f"the card has no {key!r}")
    instrument_key(card["instrument"])
    wl = np.asarray(card["wavelength"], dtype=np.float64)
    inp = card["input"]
    if not isinstance(inp, dict) or not all(k in inp for k in ("stokes", "offset", "scale")):
        raise _card_error(path, "card 'input' needs 'stokes', 'offset' and 'scale'")
    stokes = list(inp["stokes"])
    if not stokes or any(s not in _STOKES_INDEX for s in stokes) or len(set(stokes)) != len(stokes):
        raise _card_error(path, f"card input.stokes {stokes!r} must be distinct names among I, Q, U, V")
    if len(inp["offset"]) != len(stokes) or len(inp["scale"]) != len(stokes):
        raise _card_error(path, "card input.offset/scale must have one value per input Stokes parameter")
    if model.layout != "ncl" or model.input_shape != (len(stokes), wl.size):
        raise _card_error(
            path,
            f"the network takes per-sample input {model.input_shape} but the card "
            f"describes ({len(stokes)}, {wl.size}) (channels, wavelengths)",
        )
    if wl.size < 2 or not np.all(np.isfinite(wl)) or np.any(np.diff(wl) <= 0):
        raise _card_error(path, "card wavelength must be strictly increasing and finite")
    nodes, outputs = list(card["nodes"]), list(card["outputs"])
    k = len(nodes) * len(outputs)
    if not nodes or not outputs or len(set(outputs)) != len(outputs):
        raise _card_error(path, "card nodes and outputs must be non-empty (outputs distinct)")
    if model.output_shape != (k,):
        raise _card_error(
            path,
            f"the network has output {model.output_shape} but the card describes "
            f"{len(outputs)} quantities x {len(nodes)} nodes = {k}",
        )
    for key in ("output_mean", "output_std"):
        v = np.asarray(card[key], dtype=np.float64)
        if v.shape != (k,) or not np.all(np.isfinite(v)):
            raise _card_error(path, f"card {key} must hold {k} finite numbers")
    if ("azimuth_sin2" in outputs) != ("azimuth_cos2" in outputs):
        raise _card_error(path, "card outputs need both azimuth_sin2 and azimuth_cos2, or neither")
    return card


class StokesNet:
    """A trained Stokes inversion network with its model card (see the module docstring).

    Use :meth:`load`. Calling :meth:`predict` on ``(N, 4, Nλ)`` profiles normalised to the
    quiet-Sun continuum and sampled on :attr:`wavelength` returns the atmosphere at
    :attr:`nodes` for each profile, in physical units.

    Parameters
    ----------
    model : fastinv.Model
        The network (``fastinv.load``).
    card : dict
        Its model card; validated against the network.
    """

    def __init__(self, model: Model, card: Mapping, path: str = "<model>") -> None:
        self.model = model
        self.card = _validate_card(dict(card), model, path)
        self.path = path
        self.instrument = instrument_key(self.card["instrument"])
        self._wl = np.asarray(self.card["wavelength"], dtype=np.float64)
        inp = self.card["input"]
        self._channels = np.array([_STOKES_INDEX[s] for s in inp["stokes"]], dtype=np.intp)
        self._offset = np.asarray(inp["offset"], dtype=np.float32)
        self._scale = np.asarray(inp["scale"], dtype=np.float32)
        self._nodes = np.asarray(self.card["nodes"], dtype=np.float64)
        self._outputs = tuple(self.card["outputs"])
        self._mean = np.asarray(self.card["output_mean"], dtype=np.float32)
        self._std = np.asarray(self.card["output_std"], dtype=np.float32)
        names = [o for o in self._outputs if o not in ("azimuth_sin2", "azimuth_cos2")]
        if "azimuth_sin2" in self._outputs:
            names.append("azimuth")
        self._quantities = tuple(names)
        units = dict(_DEFAULT_UNITS)
        units.update({k: v for k, v in dict(self.card.get("units", {})).items() if isinstance(v, str)})
        self._units = {q: units.get(q, "") for q in self._quantities}
        self._sha256: str | None = None  # of the model file, computed when first pickled

    def __reduce__(self):
        # Tasks of a dask graph carry the model's path and SHA-256; each worker process loads
        # the file once (fastinv._dask.cached_instance) and checks it is the same file.
        if self._sha256 is None:
            self._sha256 = _dask.file_sha256(self.path)
        device = self.model.info()["device"]
        key = ("StokesNet", self.path, self._sha256, device, self.model.precision)
        return (_dask.cached_instance, (key, _load_verified, self.path, self._sha256, device, self.model.precision))

    # ------------------------------------------------------------------ construction
    @classmethod
    def load(
        cls,
        path: str | os.PathLike | None = None,
        instrument: str | None = None,
        device: str = "cpu",
        threads: int | None = None,
        precision: str = "fp32",
    ) -> "StokesNet":
        """Load a Stokes model file (default: the one shipped for ``instrument``).

        Parameters
        ----------
        path : str or os.PathLike, optional
            A ``.safetensors`` Stokes model. Default: the shipped model of ``instrument``.
        instrument : {"hinode", "visp"}, optional
            Selects the shipped model (default "hinode"); with ``path`` it must match the
            model's instrument.
        device : {"cpu", "cuda"}
        threads : int, optional
            Threads per call (default: all).
        precision : {"fp32", "bf16", "tf32"}
            As :func:`fastinv.load`: ``"bf16"`` on the CPU runs the AVX512-BF16 kernels.

        Raises
        ------
        FileNotFoundError
            No such file (also: no model shipped for the instrument in this installation).
        ValueError
            Not a Stokes model, an inconsistent card, or another instrument's model.

        Examples
        --------
        >>> net = StokesNet.load("my_visp_model.safetensors", instrument="visp")  # doctest: +SKIP
        """
        if path is None:
            path = default_model_path(instrument or "hinode")
            if not path.is_file():
                raise FileNotFoundError(
                    f"no Stokes model for {instrument_key(instrument or 'hinode')} is shipped in this "
                    f"installation ({path} is missing): pass a model file (model=... / --model PATH), "
                    "e.g. one trained with 'fastinv train stokes'"
                )
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"Stokes model file {path!r} does not exist")
        model = Model(path, device=device, threads=threads, precision=precision)
        raw = model.metadata.get(CARD_KEY)
        if raw is None:
            raise _card_error(
                path,
                f"it has no {CARD_KEY!r} metadata (write it with "
                "fastinv.export(..., metadata={'fastinv.card': json.dumps(card)}))",
            )
        try:
            card = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise _card_error(path, f"its card is not valid JSON ({exc})") from None
        net = cls(model, card, path)
        if instrument is not None and instrument_key(instrument) != net.instrument:
            raise ValueError(
                f"{path} is a model for {net.instrument}, not {instrument_key(instrument)}: "
                "pick the matching --instrument or another model"
            )
        return net

    # ------------------------------------------------------------------ properties
    @property
    def wavelength(self):
        """The model's input grid (astropy Quantity, Angstrom, air)."""
        import astropy.units as u

        return self._wl * u.AA

    @property
    def nodes(self) -> np.ndarray:
        """log tau_500 of the output nodes."""
        return self._nodes.copy()

    @property
    def quantities(self) -> tuple[str, ...]:
        """Names of the decoded quantities :meth:`predict` returns."""
        return self._quantities

    @property
    def units(self) -> dict[str, str]:
        """Unit (astropy string) of each decoded quantity."""
        return dict(self._units)

    @property
    def required_window(self) -> tuple[float, float]:
        """Wavelength range [A] an observation must cover: the model's lines (card
        ``line_wavelengths``, default Fe I 6301.5 and 6302.5) ± :data:`LINE_MARGIN`, within
        the model grid."""
        lines = [float(v) for v in self.card.get("line_wavelengths", DEFAULT_LINES)]
        inside = [v for v in lines if self._wl[0] <= v <= self._wl[-1]] or [float(self._wl[0]), float(self._wl[-1])]
        return (max(float(self._wl[0]), min(inside) - LINE_MARGIN), min(float(self._wl[-1]), max(inside) + LINE_MARGIN))

    def resampler(self, wavelength) -> "Resampler":
        """A :class:`Resampler` from an observed grid to this model's, requiring
        :attr:`required_window`."""
        return Resampler(wavelength, self._wl, self.required_window)

    @property
    def input_stokes(self) -> tuple[str, ...]:
        """The Stokes parameters the network takes, in channel order."""
        return tuple(self.card["input"]["stokes"])

    # ------------------------------------------------------------------ running
    def prepare(self, stokes: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Network input from normalised profiles on the model grid.

        Parameters
        ----------
        stokes : numpy.ndarray, shape (N, 4, Nλ)
            I, Q, U, V divided by the quiet-Sun continuum I_c, on :attr:`wavelength`.
        out : numpy.ndarray, float32, shape (N, C, Nλ), optional
            Buffer to fill (reused frame after frame); any strides.

        Returns
        -------
        numpy.ndarray, float32, shape (N, C, Nλ)
            ``(S[c] - offset[c]) * scale[c]`` for the card's channels.
        """
        stokes = np.asarray(stokes)
        n_wl = self._wl.size
        if stokes.ndim != 3 or stokes.shape[1] != 4 or stokes.shape[2] != n_wl:
            raise ValueError(
                f"profiles must have shape (N, 4, {n_wl}) (I, Q, U, V on the model's "
                f"{n_wl}-point grid), got {stokes.shape}; resample with resample_to()"
            )
        shape = (stokes.shape[0], self._channels.size, n_wl)
        if out is None:
            out = np.empty(shape, dtype=np.float32)
        elif out.shape != shape or out.dtype != np.float32:
            raise ValueError(f"out must be float32 of shape {shape}")
        if self._channels.size == 4 and np.array_equal(self._channels, np.arange(4)):
            np.copyto(out, stokes, casting="unsafe")
        else:
            for c, s in enumerate(self._channels):
                np.copyto(out[:, c], stokes[:, s], casting="unsafe")
        out -= self._offset[None, :, None]
        out *= self._scale[None, :, None]
        return out

    def decode(self, raw: np.ndarray) -> dict[str, np.ndarray]:
        """Physical values from the network's output, in place.

        Parameters
        ----------
        raw : numpy.ndarray, float32, shape (N, K)
            Network output; it is overwritten with ``raw * std + mean``.

        Returns
        -------
        dict of str to numpy.ndarray (N, n_nodes)
            Views into ``raw`` (the azimuth is a new array).
        """
        raw *= self._std
        raw += self._mean
        n = self._nodes.size
        cols = {name: raw[:, q * n : (q + 1) * n] for q, name in enumerate(self._outputs)}
        out = {}
        for name in self._quantities:
            if name == "azimuth":
                az = np.degrees(np.arctan2(cols["azimuth_sin2"], cols["azimuth_cos2"])) * 0.5
                np.mod(az, 180.0, out=az)
                az[az >= 180.0] = 0.0  # float32 rounding of mod near 180
                out[name] = az.astype(np.float32, copy=False)
                continue
            v = cols[name]
            if name == "inclination":
                np.clip(v, 0.0, 180.0, out=v)
            elif name == "B":
                np.maximum(v, 0.0, out=v)
            out[name] = v
        return out

    def run(self, x: np.ndarray, out: np.ndarray | None = None, threads: int | None = None) -> np.ndarray:
        """The raw network output ``(N, K)`` of prepared input ``x`` (see :meth:`prepare`)."""
        return self.model(x, threads=threads, out=out)

    def predict(self, stokes, threads: int | None = None, return_status: bool = False):
        """Invert normalised profiles on the model grid.

        Parameters
        ----------
        stokes : array_like or dask array, shape (N, 4, Nλ)
            I, Q, U, V / I_c on :attr:`wavelength` (see :func:`resample_to`). A dask array
            gives lazy dask arrays, run blockwise over profiles (one thread per task unless
            ``threads`` says otherwise), bitwise equal to the NumPy result; being plain
            arrays, they are in :attr:`units`.
        threads : int, optional
        return_status : bool
            Also return the per-profile status (:data:`STOKES_STATUS`); profiles with
            non-finite values get NaN results and status 1.

        Returns
        -------
        dict of str to astropy.units.Quantity, each (N, n_nodes)
            ``(results, status)`` with ``return_status``.

        Examples
        --------
        >>> atm = net.predict(profiles)            # doctest: +SKIP
        >>> atm["vlos"].to("m/s")                  # doctest: +SKIP
        """
        import astropy.units as u

        if _dask.is_dask_array(stokes):
            return self._predict_dask(stokes, threads, return_status)
        x = self.prepare(stokes)
        bad = ~np.isfinite(x).all(axis=(1, 2))
        if bad.any():
            x[bad] = 0.0
        raw = self.run(x, threads=threads)
        res = self.decode(raw)
        out = {}
        for name, v in res.items():
            v = np.array(v, dtype=np.float32)
            v[bad] = np.nan
            out[name] = v * u.Unit(self._units[name])
        status = bad.astype(np.uint8)
        return (out, status) if return_status else out

    def _predict_dask(self, stokes, threads: int | None, return_status: bool):
        """:meth:`predict` blockwise over the profiles of a dask array (lazy, plain arrays)."""
        n_wl = self._wl.size
        if stokes.ndim != 3 or stokes.shape[1] != 4 or stokes.shape[2] != n_wl:
            raise ValueError(
                f"profiles must have shape (N, 4, {n_wl}) (I, Q, U, V on the model's "
                f"{n_wl}-point grid), got {stokes.shape}; resample with resample_to()"
            )
        da = require("dask.array", "dask arrays")
        block = functools.partial(_predict_block, self, threads=threads or 1)
        res = _dask.map_pixels(block, [da.moveaxis(stokes, 0, -1)], (stokes.shape[0],))
        status = res.pop("status")
        out = {name: v.T for name, v in res.items()}
        return (out, status) if return_status else out

    def summary_cards(self) -> dict[str, tuple]:
        """FITS header cards (key -> (value, comment)) summarising the model."""
        c = self.card
        cards = {
            "INVMODEL": (os.path.basename(self.path), "fastinv Stokes model file"),
            "INVARCH": (str(c.get("architecture", "")), "network architecture"),
            "INVINST": (self.instrument, "instrument the model was trained for"),
            "INVSTOKS": (",".join(self.input_stokes), "Stokes parameters fed to the network"),
            "INVNODES": (",".join(f"{v:g}" for v in self._nodes), "log tau_500 nodes"),
            "INVWLMIN": (float(self._wl[0]), "[Angstrom] model grid start (air)"),
            "INVWLMAX": (float(self._wl[-1]), "[Angstrom] model grid end (air)"),
            "INVMU": (float(c.get("mu", 1.0)), "mu of the training profiles"),
            "INVNOISE": (
                float(c.get("noise", math.nan)) if c.get("noise") is not None else "",
                "[I_c] noise of the training profiles",
            ),
        }
        if c.get("fastinv_version"):
            cards["INVVERS"] = (str(c["fastinv_version"]), "fastinv version that trained the model")
        return cards

    def __repr__(self) -> str:
        return (
            f"StokesNet({self.path!r}, {self.card.get('architecture', '?')}, {self.instrument}, "
            f"{self._wl.size} wavelengths {self._wl[0]:.3f}-{self._wl[-1]:.3f} A, "
            f"{', '.join(self._quantities)} at {self._nodes.size} nodes)"
        )


def _load_verified(path: str, sha256: str, device: str, precision: str = "fp32") -> StokesNet:
    """Load a pickled StokesNet's model file in a worker, refusing a file that has changed."""
    if _dask.file_sha256(path) != sha256:
        raise ValueError(f"{path}: the Stokes model file changed since the task was made (SHA-256 differs)")
    return StokesNet.load(path, device=device, precision=precision)


def _predict_block(net: StokesNet, profiles: np.ndarray, *, first_pixel: int, threads: int) -> dict:
    """One dask task: ``net.predict`` on (4 * Nλ, n) profiles, outputs (n_nodes, n) by name."""
    stokes = np.moveaxis(profiles.reshape(4, -1, profiles.shape[-1]), -1, 0)
    res, status = net.predict(stokes, threads=threads, return_status=True)
    out = {name: np.ascontiguousarray(v.value.T) for name, v in res.items()}
    out["status"] = status
    return out
