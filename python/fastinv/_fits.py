"""Opening input FITS files: one place that names the file in every error.

astropy's own messages ("No SIMPLE card found, this file does not appear to be a valid FITS
file. If this is really a FITS file, try with ignore_missing_simple=True") name no file and
suggest options the command line cannot pass; :func:`open_fits` says which file is bad.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator

__all__ = ["open_fits"]


@contextlib.contextmanager
def open_fits(path: str | os.PathLike) -> Iterator:
    """``astropy.io.fits.open(path, memmap=False)`` whose errors name ``path``.

    Raises
    ------
    FileNotFoundError
        No such file.
    OSError
        Not a FITS file, or a damaged one (the message names the file).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile(suffix=".fits") as f:
    ...     _ = f.write(b"not FITS at all" * 300); f.flush()
    ...     with open_fits(f.name) as hdul:  # doctest: +ELLIPSIS
    ...         pass
    Traceback (most recent call last):
    ...
    OSError: ...fits: not a FITS file, or a damaged one (No SIMPLE card found)
    """
    from astropy.io import fits

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            # AIA level-1 images carry a BLANK keyword on float data that astropy warns about
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            hdul = fits.open(path, memmap=False)
    except (OSError, ValueError) as exc:
        reason = str(exc).split(",")[0].split(". ")[0]
        raise OSError(f"{path}: not a FITS file, or a damaged one ({reason})") from None
    with hdul:
        yield hdul
