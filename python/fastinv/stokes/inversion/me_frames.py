"""Milne-Eddington inversion of frames and maps (``FrameInverter(method="me" | "cnn+me")``).

A frame (one slit position / ViSP raster step) is resampled onto the ME model's grid (the
grid of the shipped ME-initialisation network: Hinode SP's 112 points, or ViSP's sampling on
6300.6-6303.4 A), divided by the quiet-Sun continuum I_c and fitted pixel by pixel with
:class:`.me.MEInversion` through the instrument's LSF: ``"me"`` from the classical initial
guess, ``"cnn+me"`` from the ME network's (:mod:`.me_network`). Non-finite pixels get status
3 (bad input), pixels with no signal 4 (too dark), both NaN; the others are unaffected.
"""

from __future__ import annotations

import numpy as np

from ..synthesis.training_sets import instrument_by_name
from .me import ME_CORRELATED, ME_FIT_PARAMETERS, MEInversion
from .me_output import ME_MISSING
from .network import LINE_MARGIN

__all__ = ["METHODS", "me_inversion_for", "MEMap"]

#: Methods of :class:`~.frames.FrameInverter` and ``fastinv stokes invert``.
METHODS = ("cnn", "me", "cnn+me")
_GRID = {"hinode_sp": "hinode", "visp": "visp_lines"}


def me_inversion_for(instrument: str, method: str, **options) -> MEInversion:
    """The :class:`.me.MEInversion` of ``method`` on ``instrument``'s model grid (``options``:
    its other keyword arguments)."""
    if method not in ("me", "cnn+me"):
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    options.setdefault("init", "classical" if method == "me" else "network")
    # a pixel that stays above chi2 = 2 gets up to 3 fixed variants of its guess (issue: restarts
    # only where chi2 stays high)
    return MEInversion(instrument=instrument_by_name(_GRID[instrument]), **options)


def required_window(inv: MEInversion) -> tuple[float, float]:
    """The lines of ``inv`` +- LINE_MARGIN, within its grid: what an observation must cover."""
    wl = inv.wavelength
    lines = [line.wavelength for line in inv.model.lines]
    return (max(float(wl[0]), min(lines) - LINE_MARGIN), min(float(wl[-1]), max(lines) + LINE_MARGIN))


def invert_resampled(inv: MEInversion, resampled: np.ndarray, wl_axis: int, ic: float, threads) -> tuple[dict, object]:
    """Fit a frame already on ``inv``'s grid: ``resampled`` (4, Nλ, N) or (4, N, Nλ) counts.

    Returns
    -------
    (dict, MEResult)
        parameter -> float32 (N,) (NaN where status != 0 is bad input / too dark), and the
        full result (errors, chi2, ...).
    """
    view = np.moveaxis(np.asarray(resampled, dtype=np.float64), wl_axis, 2).transpose(1, 0, 2)  # (N, 4, Nλ)
    stokes = np.empty(view.shape)
    np.divide(view, ic, out=stokes)  # in I_c, contiguous, in one pass
    res = inv.invert(stokes, threads=threads)
    return {k: res.parameters[k].value.astype(np.float32) for k in ME_FIT_PARAMETERS}, res


class MEMap:
    """Collects per-frame ME results into (ny, nx) maps (missing columns: status 5, NaN)."""

    def __init__(self, ny: int, nx: int) -> None:
        nan = lambda *s: np.full(s, np.nan)  # noqa: E731
        self.parameters = {k: nan(ny, nx) for k in ME_FIT_PARAMETERS}
        self.errors = {k: nan(ny, nx) for k in ME_FIT_PARAMETERS}
        self.correlations = nan(ny, nx, len(ME_CORRELATED), len(ME_CORRELATED))
        self.chi2 = nan(ny, nx, 5)
        self.iterations = np.zeros((ny, nx), np.int32)
        self.restarts = np.zeros((ny, nx), np.int8)
        self.status = np.full((ny, nx), ME_MISSING, np.uint8)

    def put(self, x: int, res) -> None:
        """Column ``x`` from an :class:`.me.MEResult` of one frame."""
        for k in ME_FIT_PARAMETERS:
            self.parameters[k][:, x] = res.parameters[k].value
            self.errors[k][:, x] = res.errors[k].value
        self.correlations[:, x] = res.correlations
        self.chi2[:, x] = res.chi2
        self.iterations[:, x] = res.iterations
        self.restarts[:, x] = res.restarts
        self.status[:, x] = res.status
