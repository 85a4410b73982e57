"""Level-2 results as a ``dkist.Inversion`` ASDF file, the (experimental) layout the ``dkist``
package reads with ``dkist.load_dataset``.

Each quantity of a level-2 FITS file written by :func:`fastinv.stokes.inversion.output.
write_inversion_fits` becomes an ``NDCube`` (array axes log tau node, y, x; the file's WCS;
its unit; the status as mask) under its DKIST name (temperature, velocity, mag_strength,
mag_inclination, mag_azimuth), plus ``optical_depth`` (the nodes on every pixel). The
``inversion-0.1.0`` schema also requires ``meta.headers`` (an astropy Table: here one row of
the FITS primary header) and ``meta.inventory`` (a dict); dkist's reader a ``profiles``
collection (the schema refuses a null one):
``<line>_orig`` cubes of the inverted profiles and, where the method fits profiles (the
Milne-Eddington inversion's ``MEResult.fit``; a network fits none), ``<line>_fit`` cubes of
the fits. Profile cubes have numpy axes (y, x, wavelength, Stokes) -- Stokes last, as
``dkist``'s ``Profiles.plot`` indexes them -- with the map's celestial WCS, the air wavelength
[Angstrom] and the Stokes axis (1-4 = I, Q, U, V). Without profiles the file loads, but
slicing the whole ``Inversion`` fails in dkist 1.18 (its empty collection reads back as a
dict). Slicing an ``Inversion`` slices its quantities; dkist matches the profiles' axes by
WCS pixel-axis names, which FITS WCSs do not have, so the profiles stay whole.

A Milne-Eddington level-2 file (:func:`fastinv.stokes.inversion.me_output.write_me_fits`,
``fastinv stokes invert --method me|cnn+me``) has (y, x) maps instead: every one becomes a
2-D ``NDCube`` under its FITS name (parameters, ``<name>_error``, ``chi2``, ``iterations``,
``restarts``; masked where the status is not 0) with the map's celestial WCS; ``status``
itself unmasked (its codes say why); the planes of ``correlation`` and ``chi2_stokes`` as
``correlation_<a>_<b>`` (CORRn names the pair) and ``chi2_stokes_<i|q|u|v>``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from ..._atomic import atomic_output
from ..._optional import require

__all__ = ["write_inversion_asdf"]


def write_inversion_asdf(
    path: str | os.PathLike,
    fits_path: str | os.PathLike,
    profiles: Optional[Mapping[str, Any]] = None,
    *,
    observed: Optional[np.ndarray] = None,
    fit: Optional[np.ndarray] = None,
    wavelength: Any = None,
    line: str = "FeI630",
) -> Path:
    """Write a level-2 FITS file of fastinv as a ``dkist.Inversion`` ASDF file, atomically.

    Parameters
    ----------
    path : path
        The ``.asdf`` file.
    fits_path : path
        A file written by ``write_inversion_fits`` (``fastinv stokes invert``).
    profiles : mapping of str to ndcube.NDCube, optional
        Ready-made profile cubes (``<line>_orig`` / ``<line>_fit``).
    observed : numpy.ndarray (ny, nx, 4, n_wavelength), optional
        The inverted profiles on the map's pixels (written as ``<line>_orig``).
    fit : numpy.ndarray (ny, nx, 4, n_wavelength), optional
        The method's fitted profiles, when it has them (``MEResult.fit`` of a map), written
        as ``<line>_fit``; needs ``observed``. Pixels with status != 0 are masked.
    wavelength : array_like or Quantity (n_wavelength,), optional
        Evenly spaced air wavelengths of ``observed`` (Angstrom if unitless); needed with it.
    line : str
        Name of the profiles' line or window (no ``_``: dkist splits names at it).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        Not a level-2 file; profile arrays whose shape does not match the map, ``fit``
        without ``observed``, or wavelengths that are not evenly spaced.

    Examples
    --------
    >>> res = MEInversion(instrument=inst).invert(stokes, fit=True)  # (ny, nx, 4, m)  # doctest: +SKIP
    >>> write_inversion_asdf("l2.asdf", "l2.fits", observed=stokes, fit=res.fit,    # doctest: +SKIP
    ...                      wavelength=inst.wavelength, line="FeI630")
    """
    dkist = require("dkist", "DKIST level-2 ASDF output")
    from astropy.io import fits
    from astropy.table import Table
    from dkist.dataset.inversion import Inversion, Profiles

    fits_path = Path(fits_path)
    with fits.open(fits_path) as hdul:
        primary = hdul[0].header.copy()
        names = {h.name.lower() for h in hdul[1:]}
        if "status" in names and "optical_depth" in names:
            status = np.asarray(hdul["status"].data)
            items = _stratified_cubes(hdul, status, fits_path)
            wcs = items["optical_depth"].wcs
        elif "status" in names and any(n.endswith("_error") for n in names):
            status = np.asarray(hdul["status"].data)
            items = _me_cubes(hdul, status)
            wcs = items["status"].wcs
        else:
            raise ValueError(f"{fits_path}: not a fastinv level-2 file (no status / optical_depth HDU)")
    scalar = {k: [v] for k, v in primary.items() if k not in ("COMMENT", "HISTORY", "") and not isinstance(v, bool)}
    meta = {
        "headers": Table(scalar),
        "inventory": {"origin": "fastinv", "level2_fits": fits_path.name, "quantities": sorted(items)},
    }
    profiles = dict(profiles or {})
    if observed is not None or fit is not None:
        profiles.update(_profile_cubes(line, observed, fit, wavelength, wcs, status, fits_path))
    # dkist's converter needs aligned axes on a non-empty collection ("all": same shapes)
    prof = Profiles(profiles, aligned_axes="all" if profiles else None)
    inv = Inversion(items, aligned_axes="all", meta=meta, profiles=prof)
    path = Path(path)
    with atomic_output(path) as tmp:
        os.unlink(tmp)  # dkist.save_dataset refuses to overwrite
        dkist.save_dataset(inv, tmp)
    return path


def _stratified_cubes(hdul, status: np.ndarray, fits_path: Path) -> dict:
    """(node, y, x) cubes of a network's level-2 file, and ``optical_depth`` (module docstring)."""
    import astropy.units as u
    from astropy.wcs import WCS
    from ndcube import NDCube

    nodes = np.asarray(hdul["optical_depth"].data, dtype=np.float64)
    mask = np.broadcast_to(status != 0, (nodes.size, *status.shape))
    items = {}
    wcs = None
    for h in hdul[1:]:
        name = h.name.lower()
        if name in ("status", "optical_depth"):
            continue
        wcs = WCS(h.header)
        items[name] = NDCube(np.asarray(h.data), wcs=wcs, unit=u.Unit(h.header.get("BUNIT", "")), mask=np.array(mask))
    if not items:
        raise ValueError(f"{fits_path}: no quantity HDUs")
    items["optical_depth"] = NDCube(
        np.broadcast_to(nodes[:, None, None], mask.shape).astype(np.float32), wcs=wcs, mask=np.array(mask)
    )
    return items


def _me_cubes(hdul, status: np.ndarray) -> dict:
    """2-D cubes (y, x) of every map of an ME level-2 file (module docstring)."""
    import astropy.units as u
    from astropy.wcs import WCS
    from ndcube import NDCube

    mask = status != 0
    items = {}
    for h in hdul[1:]:
        name = h.name.lower()
        data = np.asarray(h.data)
        unit = u.Unit(h.header.get("BUNIT", ""))
        if data.ndim == 2:
            items[name] = NDCube(data, wcs=WCS(h.header), unit=unit, mask=None if name == "status" else mask.copy())
            continue
        if data.ndim != 3 or data.shape[1:] != status.shape:
            raise ValueError(f"HDU {h.name}: shape {data.shape} is not (planes, ny, nx) of the ME map {status.shape}")
        wcs2 = WCS(h.header).dropaxis(2)  # the INDEX axis of the planes
        for k, plane in enumerate(data):
            if name == "chi2_stokes":
                label = "iquv"[k]
            else:
                label = str(h.header.get(f"CORR{k + 1}", k + 1)).lower().replace("-", "_")
            items[f"{name}_{label}"] = NDCube(np.ascontiguousarray(plane), wcs=wcs2, unit=unit, mask=mask.copy())
    return items


def _profile_cubes(line, observed, fit, wavelength, wcs3, status, fits_path) -> dict:
    """``<line>_orig`` (and ``<line>_fit``) cubes, numpy axes (y, x, wavelength, Stokes)."""
    from astropy.wcs import WCS
    from ndcube import NDCube

    from ..._units import to_float_array

    if observed is None:
        raise ValueError(
            "fit profiles need the observed profiles too (observed=...): dkist pairs <line>_fit with _orig"
        )
    if "_" in line or not line:
        raise ValueError(f"line {line!r}: give a name without '_' (dkist splits profile names at it)")
    if wavelength is None:
        raise ValueError("observed profiles need their wavelengths (wavelength=...)")
    wl = to_float_array(wavelength, "Angstrom", "wavelength").ravel()
    ny, nx = status.shape
    want = (ny, nx, 4, wl.size)
    step = np.diff(wl)
    if wl.size < 2 or not np.allclose(step, step[0], rtol=1e-6, atol=0) or not step[0] > 0:
        raise ValueError("profile wavelengths must be increasing and evenly spaced (a linear spectral WCS)")
    cel = wcs3.celestial
    if cel.naxis != 2:
        raise ValueError(f"{fits_path.name} has no celestial WCS: profile cubes need one")
    w = WCS(naxis=4)  # FITS order: Stokes, wavelength, x, y (numpy: y, x, wavelength, Stokes)
    w.wcs.ctype = ["STOKES", "AWAV", *cel.wcs.ctype]
    w.wcs.cunit = ["", "Angstrom", *cel.wcs.cunit]
    w.wcs.crpix = [1.0, 1.0, *cel.wcs.crpix]
    w.wcs.crval = [1.0, wl[0], *cel.wcs.crval]
    w.wcs.cdelt = [1.0, step.mean(), *cel.wcs.cdelt]
    pc = np.eye(4)
    pc[2:, 2:] = cel.wcs.get_pc()
    w.wcs.pc = pc
    w.wcs.set()
    mask = np.broadcast_to((status != 0)[:, :, None, None], (ny, nx, wl.size, 4))
    cubes = {}
    for kind, arr in (("orig", observed), ("fit", fit)):
        if arr is None:
            continue
        arr = np.asarray(arr)
        if arr.shape != want:
            raise ValueError(
                f"{kind} profiles have shape {arr.shape}; the map of {fits_path.name} needs "
                f"(ny, nx, 4, n_wavelength) = {want}"
            )
        cubes[f"{line}_{kind}"] = NDCube(
            np.ascontiguousarray(arr.transpose(0, 1, 3, 2)), wcs=w, mask=np.array(mask) if kind == "fit" else None
        )
    return cubes
