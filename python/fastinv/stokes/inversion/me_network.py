"""Network initial guesses for the Milne-Eddington inversion (``MEInversion(init="network")``).

A compact 1D CNN (:func:`fastinv.train.stokes_nets.compact_cnn`), trained by
``fastinv train stokes --target me`` on ME-synthetic profiles (:mod:`fastinv.train.stokes_me`),
maps one pixel's I, Q, U, V to the ten ME parameters of :data:`.me.ME_FIT_PARAMETERS`. It
runs in fastinv's engine (numpy only, no torch).

Encoding (the same in training and here; all in the model card):

- input: each pixel is divided by its own continuum ``I_c`` (:func:`pixel_continuum`, the
  maximum of Stokes I), channels ``I/I_c - 1, Q/I_c, U/I_c, V/I_c``, each times a scale;
- outputs (standardised with the card's mean and std): ``B cos(inclination)``,
  ``B sin(inclination)`` (the field's components, learnable also where the inclination is
  undefined), ``sin 2 azimuth``, ``cos 2 azimuth`` (no jump at the 180 deg ambiguity),
  ``vlos``, ``doppler_width``, ``damping``, ``log10 eta0``, ``S0 / I_c``, ``S1 / I_c``;
  the filling factor is 1 (the inversion's default).

Shipped models: ``me_init_hinode.safetensors`` (Hinode SP, 112 points) and
``me_init_visp.safetensors`` (DKIST ViSP sampling on 6300.6-6303.4 A, 173 points, the grid of
the shipped ViSP network). :func:`find_me_network` picks the one whose grid and lines match.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

#: Network outputs, in order.
ME_NET_OUTPUTS = (
    "B_los",
    "B_t",
    "azimuth_sin2",
    "azimuth_cos2",
    "vlos",
    "doppler_width",
    "damping",
    "log_eta0",
    "S0",
    "S1",
)
#: Card ``kind`` of an ME-initialisation model.
ME_NET_KIND = "fastinv.me_init"
#: Shipped models (in fastinv/data).
SHIPPED = {"hinode_sp": "me_init_hinode.safetensors", "visp": "me_init_visp.safetensors"}

__all__ = ["MENetwork", "find_me_network", "pixel_continuum", "encode_targets", "ME_NET_OUTPUTS", "SHIPPED"]


def pixel_continuum(stokes: np.ndarray) -> np.ndarray:
    """Each pixel's continuum: the maximum of its Stokes I over wavelength, (n, 4, m) -> (n,)."""
    return np.max(stokes[:, 0], axis=1)


def encode_targets(params: dict, ic: np.ndarray) -> np.ndarray:
    """ME parameters (name -> (n,), inversion units) and continua -> (n, 10) network targets.

    Examples
    --------
    >>> import numpy as np
    >>> p = dict(B=[100.0], inclination=[60.0], azimuth=[45.0], vlos=[1.0], doppler_width=[30.0],
    ...          damping=[0.2], eta0=[10.0], S0=[0.2], S1=[0.8])
    >>> np.round(encode_targets(p, np.array([1.0]))[0, :4], 3)
    array([50.   , 86.603,  1.   ,  0.   ])
    """
    b = np.asarray(params["B"], dtype=np.float64)
    g = np.deg2rad(np.asarray(params["inclination"], dtype=np.float64))
    phi2 = 2.0 * np.deg2rad(np.asarray(params["azimuth"], dtype=np.float64))
    return np.stack(
        [
            b * np.cos(g),
            b * np.sin(g),
            np.sin(phi2),
            np.cos(phi2),
            np.asarray(params["vlos"], dtype=np.float64),
            np.asarray(params["doppler_width"], dtype=np.float64),
            np.asarray(params["damping"], dtype=np.float64),
            np.log10(np.asarray(params["eta0"], dtype=np.float64)),
            np.asarray(params["S0"], dtype=np.float64) / ic,
            np.asarray(params["S1"], dtype=np.float64) / ic,
        ],
        axis=1,
    )


def decode_outputs(y: np.ndarray, ic: np.ndarray) -> np.ndarray:
    """(n, 10) physical network outputs -> (n, 10) ME parameters in :data:`.me.ME_FIT_PARAMETERS` order."""
    y = np.asarray(y, dtype=np.float64)
    b_los, b_t = y[:, 0], np.maximum(y[:, 1], 0.0)
    out = np.empty((y.shape[0], 10))
    out[:, 0] = np.maximum(np.hypot(b_los, b_t), 10.0)
    out[:, 1] = np.degrees(np.arctan2(b_t, b_los))
    out[:, 2] = np.degrees(0.5 * np.arctan2(y[:, 2], y[:, 3])) % 180.0
    out[:, 3] = y[:, 4]
    out[:, 4] = np.clip(y[:, 5], 5.0, 150.0)
    out[:, 5] = np.clip(y[:, 6], 1e-3, 5.0)
    out[:, 6] = np.clip(10.0 ** np.clip(y[:, 7], -2.0, 2.7), 1e-2, 500.0)
    out[:, 7] = np.clip(y[:, 8], 0.0, None) * ic
    out[:, 8] = np.clip(y[:, 9], 1e-3, None) * ic
    out[:, 9] = 1.0
    return out


class MENetwork:
    """An ME-initialisation network (model file + card).

    Parameters
    ----------
    path : str or os.PathLike
        A model written by ``fastinv train stokes --target me``.
    threads : int, optional

    Examples
    --------
    >>> from fastinv.stokes.inversion.me_network import MENetwork, SHIPPED
    >>> from fastinv.stokes.inversion.network import default_model_path
    >>> net = MENetwork(default_model_path().parent / SHIPPED["hinode_sp"])
    >>> net.wavelength.size, net.lines
    (112, ('FeI_6301', 'FeI_6302'))
    """

    def __init__(self, path: str | os.PathLike, threads: int | None = None) -> None:
        from ...model import load

        self.path = os.fspath(path)
        self.model = load(self.path, threads=threads)
        try:
            card = json.loads(self.model.metadata.get("fastinv.card", ""))
        except json.JSONDecodeError:
            card = None
        if not isinstance(card, dict) or card.get("kind") != ME_NET_KIND:
            raise ValueError(f"{self.path}: not an ME-initialisation model (card kind {ME_NET_KIND!r} expected)")
        try:
            self.card = card
            self.wavelength = np.asarray(card["wavelength"], dtype=np.float64)
            self.lines = tuple(card["lines"])
            self._scale = np.asarray(card["input"]["scale"], dtype=np.float32)
            self._mean = np.asarray(card["output_mean"], dtype=np.float64)
            self._std = np.asarray(card["output_std"], dtype=np.float64)
        except (KeyError, TypeError) as exc:
            raise ValueError(f"{self.path}: incomplete ME-initialisation card ({exc})") from None
        if card.get("outputs") != list(ME_NET_OUTPUTS) or self._mean.size != len(ME_NET_OUTPUTS):
            raise ValueError(f"{self.path}: card outputs {card.get('outputs')} are not {list(ME_NET_OUTPUTS)}")
        if self._scale.size != 4 or tuple(self.model.input_shape) != (4, self.wavelength.size):
            raise ValueError(f"{self.path}: input shape {self.model.input_shape} does not match the card's grid")
        self.threads = threads

    def matches(self, wavelength: np.ndarray, lines: Sequence[str]) -> bool:
        """True when ``wavelength`` (air A) is this model's grid (to 1e-4 A) and ``lines`` its lines."""
        wl = np.asarray(wavelength, dtype=np.float64)
        return (
            tuple(lines) == self.lines
            and wl.shape == self.wavelength.shape
            and bool(np.all(np.abs(wl - self.wavelength) <= 1e-4))
        )

    def predict(self, stokes: np.ndarray, threads: int | None = None) -> np.ndarray:
        """(n, 4, m) profiles on :attr:`wavelength` -> (n, 10) initial ME parameters.

        Pixels with non-finite values get NaN rows (the inversion flags them as bad input);
        pixels without a positive continuum get the guess of an empty input (the inversion
        flags them as too dark when their mean intensity is at or below its threshold).
        """
        s = np.asarray(stokes)
        if s.ndim != 3 or s.shape[1:] != (4, self.wavelength.size):
            raise ValueError(f"stokes must have shape (n, 4, {self.wavelength.size}), got {s.shape}")
        with np.errstate(invalid="ignore"):
            ic = pixel_continuum(s).astype(np.float64)
            finite = np.isfinite(s).all(axis=(1, 2))
            good = finite & (ic > 0)
        # one pass into the float32 input (the float64 quotient rounded, as s / ic then a cast;
        # boolean indexing would copy the frame twice first)
        x = np.empty(s.shape, dtype=np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(s, np.where(good, ic, 1.0)[:, None, None], out=x, casting="unsafe")
        x[:, 0] -= 1.0
        x *= self._scale[None, :, None]
        if not good.all():
            x[~good] = 0.0
        y = self.model(x, threads=self.threads if threads is None else threads)
        out = decode_outputs(np.asarray(y, dtype=np.float64) * self._std + self._mean, np.where(good, ic, 1.0))
        out[~finite] = np.nan
        return out

    def __repr__(self) -> str:
        return f"MENetwork({self.path!r}, {self.wavelength.size} wavelengths)"


def _shipped_dir() -> Path:
    from .network import default_model_path

    return default_model_path().parent


_CACHE: dict[str, MENetwork] = {}


def find_me_network(wavelength: np.ndarray, lines: Sequence[str]) -> MENetwork | None:
    """The shipped ME-initialisation network for this grid and these lines, or None."""
    for name in SHIPPED.values():
        path = _shipped_dir() / name
        if not path.exists():
            continue
        net = _CACHE.get(name)
        if net is None:
            net = _CACHE[name] = MENetwork(path)
        if net.matches(wavelength, lines):
            return net
    return None
