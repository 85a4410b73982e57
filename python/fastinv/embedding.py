"""Where the installed C/C++ library is: headers, CMake package and shared library.

The wheel carries the same ``libfastinv.so`` the Python module runs on, with the C API
(``fastinv/fastinv.h``) and the C++ headers, so a C or C++ extension can build against it,
as numpy's and pybind11's ``get_include()`` allow (see ``docs/embedding.md``).

Examples
--------
>>> from pathlib import Path
>>> import fastinv
>>> (Path(fastinv.get_include()) / "fastinv" / "fastinv.h").is_file()
True
"""

from __future__ import annotations

from pathlib import Path

from . import _core

__all__ = ["get_include", "get_cmake_dir", "get_library_dir"]


def _installed(*parts: str) -> str:
    # beside the compiled module: the wheel's (or an editable install's) fastinv/ folder
    path = Path(_core.__file__).resolve().parent.joinpath(*parts)
    if not path.exists():
        raise OSError(f"{path} is missing: this fastinv was built without the embedding files (FASTINV_INSTALL=OFF)")
    return str(path)


def get_include() -> str:
    """Directory to add to the include path for ``fastinv/fastinv.h`` and ``fastinv/*.hpp``.

    Returns
    -------
    str
    """
    return _installed("include")


def get_library_dir() -> str:
    """Directory holding ``libfastinv.so`` (link with ``-L<dir> -lfastinv -Wl,-rpath,<dir>``).

    Returns
    -------
    str
    """
    return _installed("lib")


def get_cmake_dir() -> str:
    """Directory of ``fastinvConfig.cmake``: pass it as ``-Dfastinv_DIR=...`` to CMake.

    Returns
    -------
    str
    """
    return _installed("lib", "cmake", "fastinv")
