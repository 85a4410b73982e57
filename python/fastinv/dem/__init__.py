"""Differential emission measure (DEM) inversions of SDO/AIA data.

* :class:`BasisPursuit` -- sparse DEMs of Cheung et al. (2015), solved in C++.
* :func:`load_response` -- AIA temperature responses (shipped tables or a user's CSV).
* :func:`aia_error` -- the AIA uncertainty model of SSW ``aia_bp_estimate_error``.

Examples
--------
>>> from fastinv.dem import BasisPursuit
>>> BasisPursuit().dictionary.shape
(6, 84)
"""

from __future__ import annotations

from ..status import DEM_STATUS
from .basis_pursuit import DEEPEM_LOGT, DEFAULT_LOGT, DICTFAC, BasisPursuit, BPResult, aia_error
from .deepem import DeepEM
from .response import AIA_CHANNELS, SHIPPED_TABLES, TemperatureResponse, load_response

__all__ = [
    "BasisPursuit",
    "DeepEM",
    "BPResult",
    "aia_error",
    "load_response",
    "TemperatureResponse",
    "AIA_CHANNELS",
    "SHIPPED_TABLES",
    "DEM_STATUS",
    "DEFAULT_LOGT",
    "DEEPEM_LOGT",
    "DICTFAC",
]
