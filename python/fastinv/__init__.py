"""fastinv: fast per-pixel inversions of solar observations.

Small trained networks (DeepEM, 1D Stokes CNNs) and classical solvers (Basis
Pursuit DEMs, Milne-Eddington and LTE Stokes synthesis) run by fastinv's own
C++/CUDA kernels, with a thin Python layer for I/O, training and the CLI.

Examples
--------
>>> import fastinv
>>> fastinv.info()["isa"] in ("generic", "avx2", "avx512")
True
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

from . import _core
from ._warnings import FastinvUserWarning
from .embedding import get_cmake_dir, get_include, get_library_dir
from .model import Model, load

try:
    __version__ = _version("fastinv")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "info",
    "load",
    "Model",
    "export",
    "FastinvUserWarning",
    "get_include",
    "get_cmake_dir",
    "get_library_dir",
    "__version__",
]

# fastinv.export imports torch only when called, so importing it here is cheap. Importing
# the FUNCTION at import time matters: a wrapper that imports the submodule lazily gets
# replaced by the submodule object (Python binds `fastinv.export` to the submodule on its
# first import), and the second call fails with "'module' object is not callable".
from .export import export  # noqa: E402


def info() -> dict:
    """Describe the compiled engine and the machine it runs on.

    Returns
    -------
    dict
        ``version``, ``isa`` (SIMD kernels in use), ``available_isas``,
        ``bf16`` (whether ``load(..., precision="bf16")`` runs on this CPU: AVX512-BF16),
        ``cpu_precisions`` (the ``precision`` words ``load`` accepts on this CPU: ``"fp32"``,
        and ``"bf16"`` and ``"bf16x2"`` where ``bf16``),
        ``threads`` (default OpenMP threads), ``openmp``, ``cuda_compiled`` and
        ``cuda_devices``.
    """
    return {
        "version": __version__,
        "isa": _core.active_isa(),
        "available_isas": list(_core.available_isas()),
        "bf16": _core.bf16_available(),
        "cpu_precisions": ["fp32", "bf16", "bf16x2"] if _core.bf16_available() else ["fp32"],
        "threads": _core.default_threads(),
        "openmp": _core.openmp_enabled(),
        "cuda_compiled": _core.cuda_compiled(),
        "cuda_devices": _core.cuda_device_count(),
    }
