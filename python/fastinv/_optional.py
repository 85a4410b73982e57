"""Optional dependencies: import them on first use, or fail with one line naming the extra.

fastinv needs only numpy, astropy and tqdm at run time; training, plots, HDF5 sets, the
lightweaver cross-check, dkist datasets and CuPy arrays each come with an extra of the
package. A missing one is an :class:`ImportError` whose message is the install command.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["require", "pyplot", "EXTRAS"]

#: Module -> (extra that installs it, what it is for).
EXTRAS = {
    "torch": ("train", "training and exporting networks (PyTorch)"),
    "h5py": ("train", "HDF5 training sets"),
    "matplotlib": ("plot", "quicklook PNGs"),
    "lightweaver": ("evaluate", "the lightweaver cross-check"),
    "dkist": ("dkist", "DKIST .asdf datasets"),
    "cupy": ("cuda", "CuPy device arrays"),
    "dask": ("dask", "dask arrays and series runs"),
    "distributed": ("dask", "a dask.distributed scheduler"),
    "ndcube": ("sunpy", "NDCube results"),
    "sunpy": ("sunpy", "sunpy Maps"),
    "onnxruntime": ("bench", "the ONNX Runtime peer of fastinv bench"),
}


def require(module: str, purpose: str | None = None) -> ModuleType:
    """Import ``module`` or raise ImportError with the ``pip install`` line that provides it.

    Examples
    --------
    >>> require("numpy").__name__
    'numpy'
    >>> require("not_a_module_fastinv_knows")
    Traceback (most recent call last):
    ...
    ImportError: not_a_module_fastinv_knows is needed but not installed: pip install not_a_module_fastinv_knows
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        extra, what = EXTRAS.get(top, (None, None))
        need = purpose or what
        if extra is None:
            raise ImportError(f"{top} is needed but not installed: pip install {top}") from None
        raise ImportError(f'{need} needs {top}, which is not installed: pip install "fastinv[{extra}]"') from None


def pyplot() -> ModuleType:
    """matplotlib.pyplot on the non-interactive Agg backend (files only, no screen needed)."""
    matplotlib = require("matplotlib")
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")
