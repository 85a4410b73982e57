"""Opening input FITS files: one place that names the file in every error.

astropy's own messages ("No SIMPLE card found, this file does not appear to be a valid FITS
file. If this is really a FITS file, try with ignore_missing_simple=True") name no file and
suggest options the command line cannot pass; :func:`open_fits` says which file is bad.

Before astropy sees a file, :func:`check_fits_structure` reads each HDU's header cards itself
and checks BITPIX, NAXIS, NAXISn, PCOUNT and GCOUNT and the data size they imply against the
file's length: a header such as ``NAXIS = 99999999999999999999`` otherwise makes astropy
loop or allocate for as long as memory lasts.
"""

from __future__ import annotations

import contextlib
import gzip
import math
import os
import warnings
import zlib
from collections.abc import Iterator
from numbers import Integral, Real

__all__ = ["open_fits", "check_fits_structure", "TruncatedFitsError", "header_number"]

_BLOCK = 2880
_BITPIX = (8, 16, 32, 64, -32, -64)
_MAX_HEADER_BLOCKS = 1000  # 36 000 cards; real headers have a few hundred
_MAX_GZIP_RATIO = 1032  # deflate cannot compress better than about 1032:1


class TruncatedFitsError(OSError):
    """A FITS file that ends before its headers say it does (still being written, or cut)."""


def _int_card(path: str, cards: dict, key: str, default: int | None = None) -> int:
    if key not in cards:
        if default is not None:
            return default
        raise OSError(f"{path}: not a valid FITS file (the header has no {key} keyword)")
    text = cards[key]
    try:
        return int(text)
    except ValueError:
        raise OSError(f"{path}: not a valid FITS file ({key} = {text[:30]!r} is not an integer)") from None


def _read_header(path: str, f, start: int) -> dict | None:
    """The value text of each keyword of the header at ``start`` (None: no HDU there)."""
    cards: dict[str, str] = {}
    for block in range(_MAX_HEADER_BLOCKS):
        data = f.read(_BLOCK)
        if block == 0 and start > 0 and (len(data) < 8 or not data.startswith(b"XTENSION")):
            return None  # trailing bytes after the last HDU: ignored, as astropy does
        if block == 0 and start == 0:
            if len(data) < 10:
                raise TruncatedFitsError(f"{path}: empty or truncated FITS file ({len(data)} bytes)")
            if not data.startswith(b"SIMPLE  = "):
                raise OSError(f"{path}: not a FITS file (no SIMPLE card)")
        if len(data) < _BLOCK:
            raise TruncatedFitsError(
                f"{path}: truncated FITS file (the header at byte {start} ends without an END card)"
            )
        for i in range(0, _BLOCK, 80):
            card = data[i : i + 80].decode("ascii", errors="replace")
            key = card[:8].strip()
            if key == "END":
                return cards
            if card[8:10] == "= " and key not in cards:
                cards[key] = card[10:].split("/")[0].strip()
    raise OSError(f"{path}: not a valid FITS file (no END card in the first {_MAX_HEADER_BLOCKS * 36} header cards)")


def check_fits_structure(path: str | os.PathLike) -> None:
    """Check every HDU's structural keywords against the file before astropy reads it.

    Raises
    ------
    TruncatedFitsError
        The file ends inside a header or before the data its header announces.
    OSError
        No SIMPLE card, or BITPIX / NAXIS / NAXISn / PCOUNT / GCOUNT out of range or not
        integers; the message names the file and the keyword.
    """
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as raw:
        zipped = raw.read(2) == b"\x1f\x8b"
    # a gzip file's length bounds its content only through deflate's best ratio
    limit = size * _MAX_GZIP_RATIO if zipped else size
    opener = gzip.open if zipped else open
    try:
        with opener(path, "rb") as f:
            _check_hdus(path, f, size, limit, zipped)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise TruncatedFitsError(f"{path}: truncated or damaged gzip-compressed FITS file ({exc})") from None


def _check_hdus(path: str, f, size: int, limit: int, zipped: bool) -> None:
    start = 0
    while True:
        cards = _read_header(path, f, start)
        if cards is None:
            return
        if start == 0 and cards.get("SIMPLE") != "T":
            raise OSError(f"{path}: not a FITS file (no SIMPLE = T card)")
        bitpix = _int_card(path, cards, "BITPIX")
        if bitpix not in _BITPIX:
            raise OSError(f"{path}: not a valid FITS file (BITPIX = {bitpix}; allowed: {_BITPIX})")
        naxis = _int_card(path, cards, "NAXIS")
        if not 0 <= naxis <= 999:
            raise OSError(f"{path}: not a valid FITS file (NAXIS = {naxis}; allowed: 0 to 999)")
        axes = [_int_card(path, cards, f"NAXIS{k}") for k in range(1, naxis + 1)]
        if any(n < 0 for n in axes):
            raise OSError(f"{path}: not a valid FITS file (a negative NAXISn: {axes})")
        pcount = _int_card(path, cards, "PCOUNT", 0)
        gcount = _int_card(path, cards, "GCOUNT", 1)
        if pcount < 0 or gcount < 0:
            raise OSError(f"{path}: not a valid FITS file (PCOUNT = {pcount}, GCOUNT = {gcount})")
        groups = start == 0 and naxis > 0 and axes[0] == 0 and cards.get("GROUPS") == "T"
        elements = 0
        if naxis > 0:
            elements = 1
            for n in axes[1:] if groups else axes:
                elements *= n
        nbytes = abs(bitpix) // 8 * gcount * (pcount + elements)
        data_start = f.tell()
        end = data_start + nbytes
        if end > limit:
            raise TruncatedFitsError(
                f"{path}: truncated or damaged FITS file (the header announces {nbytes} bytes of data "
                f"from byte {data_start}; the file has {size} bytes{' compressed' if zipped else ''})"
            )
        padded = data_start + -(-nbytes // _BLOCK) * _BLOCK
        if zipped:
            f.seek(end)  # decompresses up to there: bounded by the real content
            if f.tell() < end:
                raise TruncatedFitsError(f"{path}: truncated FITS file (data end before byte {end})")
        if padded >= limit:
            return
        f.seek(padded)
        start = padded


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
    OSError: ...fits: not a FITS file (no SIMPLE card)
    """
    from astropy.io import fits

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file")
    check_fits_structure(path)
    try:
        with warnings.catch_warnings():
            # AIA level-1 images carry a BLANK keyword on float data that astropy warns about
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            hdul = fits.open(path, memmap=False)
            # astropy parses cards lazily: a damaged one would surface later, in whatever
            # reads it, as a VerifyError that names no file
            for hdu in hdul:
                for card in hdu.header.cards:
                    card.value  # noqa: B018 - parses the card
    except (OSError, ValueError, fits.VerifyError) as exc:
        reason = str(exc).split(",")[0].split(". ")[0]
        raise OSError(f"{path}: not a FITS file, or a damaged one ({reason})") from None
    with hdul:
        yield hdul


def header_number(
    header,
    key: str,
    path: str | os.PathLike,
    *,
    integer: bool = False,
    low: float = -math.inf,
    high: float = math.inf,
    default: float | None = None,
) -> float | int:
    """A numeric header keyword checked for type and range before use.

    A logical (``EXPTIME = T``), a string or a non-finite value is refused rather than
    converted (``float(True)`` would be a 1 s exposure).

    Parameters
    ----------
    header : mapping
        An astropy header (or any mapping of keyword to value).
    key : str
    path : path
        Named in the error.
    integer : bool
        The value must be a whole number; it is returned as ``int``.
    low, high : float
        The allowed closed range.
    default : float, optional
        Returned when the keyword is absent (None: the keyword is required).

    Raises
    ------
    ValueError
        Missing (without a default), not a number, not whole, or out of range; the message
        names the file and the keyword.

    Examples
    --------
    >>> header_number({"EXPTIME": 2.9}, "EXPTIME", "aia.fits", low=0)
    2.9
    >>> header_number({"EXPTIME": True}, "EXPTIME", "aia.fits", low=0)
    Traceback (most recent call last):
    ...
    ValueError: aia.fits: EXPTIME = True is not a number
    """
    if key not in header:
        if default is not None:
            return default
        raise ValueError(f"{os.fspath(path)}: the header has no {key} keyword")
    value = header[key]
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{os.fspath(path)}: {key} = {value!r} is not a number")
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{os.fspath(path)}: {key} = {value!r} is outside the allowed range [{low:g}, {high:g}]")
    if integer:
        if not isinstance(value, Integral) and value != int(value):
            raise ValueError(f"{os.fspath(path)}: {key} = {value!r} is not a whole number")
        return int(value)
    return float(value)


def status_meaning_card(text: str, comment: str = "status code meaning") -> tuple[str, str]:
    """(value, comment) of a STATn card: the whole text as the value, and the comment only
    where both fit the 80-character card (astropy would cut the comment, with a warning)."""
    quoted = len(text.replace("'", "''")) + 2
    return (text, comment) if 10 + max(quoted, 20) + 3 + len(comment) <= 80 else (text, "")
