"""Stokes forward models: Milne-Eddington and depth-stratified LTE synthesis.

Shared building blocks (used by both models):

- :mod:`fastinv.stokes.voigt` -- Faddeeva, Voigt and Faraday-Voigt functions.
- :mod:`fastinv.stokes.lines` -- spectral-line registry and Zeeman patterns.
- :class:`fastinv.stokes.Instrument` -- LSF, resampling, noise (Hinode SP, DKIST ViSP).

Models: :class:`fastinv.stokes.MilneEddington`, :class:`fastinv.stokes.LTE` (with
:mod:`fastinv.stokes.atmospheres`).

Examples
--------
>>> from fastinv import stokes
>>> stokes.lines.get_line("FeI_6302").g_eff
2.5
"""
from __future__ import annotations

from . import lines, voigt
from .lines import SpectralLine, ZeemanComponent, get_line, line_names, register_line, zeeman_pattern
from .voigt import faddeeva, voigt_faraday
from .instrument import Instrument
from .milne_eddington import ME_PARAMETERS, ME_UNITS, MilneEddington

__all__ = [
    "lines",
    "voigt",
    "SpectralLine",
    "ZeemanComponent",
    "get_line",
    "line_names",
    "register_line",
    "zeeman_pattern",
    "faddeeva",
    "voigt_faraday",
    "Instrument",
    "MilneEddington",
    "ME_PARAMETERS",
    "ME_UNITS",
]

# Each model adds itself below (one try-block per module keeps merges of parallel
# branches trivial and a missing optional piece from breaking the package).

# Depth-stratified LTE synthesis and model atmospheres (stokes-lte).
from . import atmospheres  # noqa: E402
from .lte import LTE, LTE_STATUS  # noqa: E402

__all__ += ["LTE", "LTE_STATUS", "atmospheres"]

# Stokes inversion with trained networks: model loader, readers, frame inverter (stokesio).
from .network import StokesNet, resample_to, STOKES_STATUS  # noqa: E402
from .invert import FrameInverter, FrameResult, invert_files  # noqa: E402

__all__ += ["StokesNet", "resample_to", "STOKES_STATUS", "FrameInverter", "FrameResult", "invert_files"]
