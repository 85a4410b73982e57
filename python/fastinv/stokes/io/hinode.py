"""Hinode SOT/SP level-1 files: one FITS file per slit position.

Layout (NAOJ/LMSAL level-1 SP data): the primary HDU holds 16-bit integers of numpy shape
``(4, N_y, Nλ)`` = (Stokes I, Q, U, V; along the slit; wavelength), normally N_y = 1024
(512 in fast maps) and Nλ = 112 samples of 21.5 mA. Two on-board tricks are undone here,
in this order (as the SolarSoft reader does):

- Stokes I above 32767 counts wraps around to negative values: **65 536 is added to
  negative I**;
- ``SPBSHFT`` says which Stokes parameters were halved (bit-shifted) to fit 16 bits:
  ``>= 1``: I, ``>= 2``: also V, ``>= 3``: also Q and U; they are **doubled** back.

Wavelength [A] = ``CRVAL1 + (i + 1 - CRPIX1) * CDELT1`` (``CUNIT1`` Angstrom unless it says
nm or m). The map's celestial WCS is built from the slits' ``XCEN``/``YCEN`` (arcsec, solar
x/y of each slit centre), ``XSCALE``/``YSCALE`` (arcsec per pixel) and ``CROTA2``; slits are
ordered by ``SLITINDX`` (0 ... NSLITPOS - 1). Keywords as in the SOT data analysis guide's
SP keyword table (sot.lmsal.com/data/sot/sotguide, "SOT-SP FITS Keywords").

Examples
--------
>>> from fastinv.stokes.io.hinode import read_hinode_slit          # doctest: +SKIP
>>> slit = read_hinode_slit("SP3D20070105_082118.7C.fits")          # doctest: +SKIP
>>> slit.stokes.shape, slit.wavelength[:2]                           # doctest: +SKIP
((4, 1024, 112), array([6300.8902, 6300.9117]))
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..._fits import header_number, open_fits

__all__ = ["HinodeSlit", "read_hinode_slit", "sort_slits", "slit_columns", "hinode_map_wcs", "wavelength_from_header"]

_LENGTH_UNITS = {"": 1.0, "angstrom": 1.0, "a": 1.0, "nm": 10.0, "m": 1e10}


@dataclass
class HinodeSlit:
    """One slit position: ``stokes`` (4, N_y, Nλ) float32 in corrected counts, the wavelength
    grid [A], the FITS header and the file name."""

    stokes: np.ndarray
    wavelength: np.ndarray
    header: object
    path: str


def wavelength_from_header(header, axis: int, path: str = "") -> np.ndarray:
    """Wavelengths [A] of FITS ``axis`` (1-based) from CRVALn/CDELTn/CRPIXn/CUNITn."""
    keys = [f"CRVAL{axis}", f"CDELT{axis}", f"CRPIX{axis}", f"NAXIS{axis}"]
    missing = [k for k in keys if k not in header]
    if missing:
        raise ValueError(f"{path}: no wavelength axis: header lacks {', '.join(missing)}")
    unit = str(header.get(f"CUNIT{axis}", "")).strip().lower()
    if unit not in _LENGTH_UNITS:
        raise ValueError(f"{path}: wavelength unit CUNIT{axis}={unit!r} is not Angstrom, nm or m")
    f = _LENGTH_UNITS[unit]
    i = np.arange(header_number(header, f"NAXIS{axis}", path, integer=True, low=1), dtype=np.float64)
    crval, crpix, cdelt = (header_number(header, f"{k}{axis}", path) for k in ("CRVAL", "CRPIX", "CDELT"))
    wl = (crval + (i + 1 - crpix) * cdelt) * f
    if not np.all(np.isfinite(wl)) or cdelt == 0:
        raise ValueError(f"{path}: invalid wavelength axis (CDELT{axis} = 0 or non-finite values)")
    return wl


def read_hinode_slit(path: str | os.PathLike) -> HinodeSlit:
    """Read one Hinode SP level-1 slit file (see the module docstring for the corrections).

    Raises
    ------
    ValueError
        Not a Hinode SP file (``INSTRUME``), not (4, N_y, Nλ) data, or no wavelength keys.
    OSError
        The file cannot be read.
    """

    path = os.fspath(path)
    with open_fits(path) as hdul:
        hdu = next((h for h in hdul if h.data is not None), None)
        if hdu is None:
            raise ValueError(f"{path}: no image data")
        header = hdu.header.copy()
        inst = str(header.get("INSTRUME", hdul[0].header.get("INSTRUME", ""))).upper()
        if inst and not (inst.startswith("SOT") or inst in ("SP", "HINODE", "HINODE/SP")):
            raise ValueError(f"{path}: INSTRUME = {inst!r} is not Hinode SOT/SP (a DKIST file? use --instrument visp)")
        raw = np.asarray(hdu.data)
    if raw.ndim != 3 or raw.shape[0] != 4:
        raise ValueError(
            f"{path}: Hinode SP level-1 data have shape (4, N_y, N_lambda) = (Stokes, slit, "
            f"wavelength), got {raw.shape}"
        )
    if not np.issubdtype(raw.dtype, np.number):
        raise ValueError(f"{path}: data are not numbers")
    ctype1 = str(header.get("CTYPE1", "WAVELENGTH")).strip().upper()
    if not ctype1.startswith(("WAVE", "AWAV")):
        raise ValueError(
            f"{path}: FITS axis 1 is {ctype1!r}, expected the wavelength (level-1 SP data are "
            "(4, N_y, N_lambda) in numpy order); is this a level-0 or a derived file?"
        )
    stokes = raw.astype(np.float32)
    i = stokes[0]
    i[i < 0] += 65536.0  # 16-bit wrap-around of bright Stokes I
    # 0: none halved, 1: I, 2: I and V, 3: I, V, Q and U (SOT-SP keyword table)
    shift = header_number(header, "SPBSHFT", path, integer=True, low=0, high=3, default=0)
    if shift >= 1:
        stokes[0] *= 2.0
    if shift >= 2:
        stokes[3] *= 2.0
    if shift >= 3:
        stokes[1:3] *= 2.0
    wl = wavelength_from_header(header, 1, path)
    if wl.size != stokes.shape[2]:  # pragma: no cover - NAXIS1 is the data's last axis
        raise ValueError(f"{path}: wavelength axis length {wl.size} != data {stokes.shape[2]}")
    return HinodeSlit(stokes, wl, header, path)


def sort_slits(headers: Sequence, paths: Sequence[str]) -> list[int]:
    """Order of the slit files in the map: by ``SLITINDX`` (else ``XCEN``, else file name).

    Raises
    ------
    ValueError
        Two files with the same slit index (files of more than one map).
    """
    if all("SLITINDX" in h for h in headers):
        keys = [header_number(h, "SLITINDX", p, integer=True, low=0) for h, p in zip(headers, paths)]
        if len(set(keys)) != len(keys):
            raise ValueError(
                "two files have the same SLITINDX: these are slits of more than one map; "
                "invert one map (one directory of SP3D*.fits) at a time"
            )
    elif all("XCEN" in h for h in headers):
        keys = [header_number(h, "XCEN", p) for h, p in zip(headers, paths)]
    else:
        keys = list(paths)
    return sorted(range(len(paths)), key=lambda k: keys[k])


def slit_columns(headers: Sequence, paths: Sequence[str]) -> list[int]:
    """The map column of each slit file (``headers`` in map order, as :func:`sort_slits`
    gives): ``SLITINDX`` minus the first one; without it, ``XCEN`` steps of ``XSCALE``
    (when they are whole numbers of steps); otherwise consecutive columns. A missing slit
    file thus leaves its column empty instead of shifting every later slit.

    Raises
    ------
    ValueError
        SLITINDX beyond NSLITPOS, or more missing positions than files (slits of different
        maps, or damaged keywords).
    """
    n = len(headers)
    if all("SLITINDX" in h for h in headers):
        pos = [header_number(h, "SLITINDX", p, integer=True, low=0) for h, p in zip(headers, paths)]
        for h, p, k in zip(headers, paths, pos):
            if "NSLITPOS" in h and k >= header_number(h, "NSLITPOS", p, integer=True, low=1):
                raise ValueError(f"{p}: SLITINDX = {k} is not below NSLITPOS = {h['NSLITPOS']}")
    elif n > 1 and all("XCEN" in h and "XSCALE" in h for h in headers):
        step = header_number(headers[0], "XSCALE", paths[0], low=1e-6, high=3600)
        steps = [(header_number(h, "XCEN", p) - header_number(headers[0], "XCEN", paths[0])) / step
                 for h, p in zip(headers, paths)]  # fmt: skip
        if any(abs(s - round(s)) > 0.25 for s in steps):
            return list(range(n))
        pos = [int(round(s)) for s in steps]
    else:
        return list(range(n))
    cols = [k - pos[0] for k in pos]
    if any(b <= a for a, b in zip(cols, cols[1:])):
        return list(range(n))  # XCEN steps that do not order the files: no gap detection
    if cols[-1] + 1 - n > n:
        raise ValueError(
            f"the {n} slit files ({paths[0]} ... {paths[-1]}) span {cols[-1] + 1} slit positions: slits of "
            "more than one map, or damaged SLITINDX/XCEN keywords; invert one map at a time"
        )
    return cols


def hinode_map_wcs(
    headers: Sequence, ny: int, columns: Sequence[int] | None = None, paths: Sequence[str] | None = None
):
    """Celestial WCS (helioprojective, arcsec) of the map image (ny along the slit, one column
    per slit position; ``columns``: each header's column, default consecutive; ``paths``
    name the files in errors), or None when the headers lack XCEN/YCEN/YSCALE."""
    from astropy.wcs import WCS

    names = list(paths) if paths is not None else [f"slit file {k}" for k in range(len(headers))]
    h0 = headers[0]
    if not all(k in h0 for k in ("XCEN", "YCEN", "YSCALE")):
        return None
    cols = np.arange(len(headers)) if columns is None else np.asarray(columns, dtype=float)
    xs = np.array([header_number(h, "XCEN", p, default=np.nan) for h, p in zip(headers, names)])
    dy = header_number(h0, "YSCALE", names[0], low=1e-6, high=3600)
    dx = header_number(h0, "XSCALE", names[0], low=1e-6, high=3600, default=dy)
    ok = np.isfinite(xs)
    if len(headers) > 1 and ok.all() and cols[-1] > cols[0]:
        steps = np.diff(xs) / np.diff(cols)
        dx = float(np.median(steps)) or dx
    w = WCS(naxis=2)
    w.wcs.ctype = ["HPLN-TAN", "HPLT-TAN"]
    w.wcs.cunit = ["arcsec", "arcsec"]
    w.wcs.crpix = [1.0, (ny + 1) / 2.0]
    w.wcs.crval = [float(xs[0]), header_number(h0, "YCEN", names[0])]
    w.wcs.cdelt = [dx, dy]
    rot = math.radians(header_number(h0, "CROTA2", names[0], low=-360, high=360, default=0.0))
    if rot:
        c, s = math.cos(rot), math.sin(rot)
        w.wcs.pc = [[c, -s * dy / dx], [s * dx / dy, c]]
    if "DATE_OBS" in h0 or "DATE-OBS" in h0:
        w.wcs.dateobs = str(h0.get("DATE_OBS", h0.get("DATE-OBS")))
    return w
