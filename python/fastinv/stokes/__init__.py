"""Spectropolarimetry of Fe I 630 nm: Stokes synthesis, inversion and instrument files.

The package is split by what a module does:

- :mod:`fastinv.stokes.synthesis` -- forward models: spectral lines and Zeeman patterns,
  Faddeeva/Voigt functions, instruments (LSF, sampling, noise), Milne-Eddington and LTE
  synthesis, model atmospheres, parameter sampling and training-set files.
- :mod:`fastinv.stokes.inversion` -- the trained networks (:class:`StokesNet`), frame and map
  inversion (:class:`FrameInverter`, :func:`invert_files`), the Milne-Eddington
  least-squares inversion (:class:`MEInversion`), continuum normalisation,
  level-2 output files and accuracy evaluation.
- :mod:`fastinv.stokes.io` -- readers of Hinode SP level-1 and DKIST ViSP level-1 files.

The names most people need are re-exported here.

Examples
--------
>>> from fastinv import stokes
>>> stokes.lines.get_line("FeI_6302").g_eff
2.5
"""

from __future__ import annotations

from .inversion.frames import FrameInverter, FrameResult, invert_files
from .inversion.me import ME_FIT_PARAMETERS, MEInversion, MEResult
from .inversion.network import STOKES_STATUS, StokesNet, resample_to
from .inversion.stray_light import quiet_sun_profile
from .synthesis import atmospheres, lines, voigt
from .synthesis.instrument import Instrument
from .synthesis.lines import SpectralLine, ZeemanComponent, get_line, line_names, register_line, zeeman_pattern
from .synthesis.lte import LTE, LTE_STATUS
from .synthesis.milne_eddington import ME_PARAMETERS, ME_UNITS, MilneEddington
from .synthesis.voigt import faddeeva, voigt_faraday

__all__ = [
    "lines",
    "voigt",
    "atmospheres",
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
    "LTE",
    "LTE_STATUS",
    "StokesNet",
    "resample_to",
    "STOKES_STATUS",
    "FrameInverter",
    "FrameResult",
    "invert_files",
    "MEInversion",
    "MEResult",
    "quiet_sun_profile",
    "ME_FIT_PARAMETERS",
]
