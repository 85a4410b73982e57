"""Level-2 results as a ``dkist.Inversion`` ASDF file, the (experimental) layout the ``dkist``
package reads with ``dkist.load_dataset``.

Each quantity of a level-2 FITS file written by :func:`fastinv.stokes.inversion.output.
write_inversion_fits` becomes an ``NDCube`` (array axes log tau node, y, x; the file's WCS;
its unit; the status as mask) under its DKIST name (temperature, velocity, mag_strength,
mag_inclination, mag_azimuth), plus ``optical_depth`` (the nodes on every pixel). The
``inversion-0.1.0`` schema also requires ``meta.headers`` (an astropy Table: here one row of
the FITS primary header) and ``meta.inventory`` (a dict), and a ``profiles`` collection:
``<line>_orig`` cubes of the profiles the network saw when given. A network fits no profiles,
so there are no ``<line>_fit``. Without profiles the file loads, but slicing the whole
``Inversion`` fails in dkist 1.18 (its empty collection reads back as a dict).
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
    path: str | os.PathLike, fits_path: str | os.PathLike, profiles: Optional[Mapping[str, Any]] = None
) -> Path:
    """Write a level-2 FITS file of fastinv as a ``dkist.Inversion`` ASDF file, atomically.

    Parameters
    ----------
    path : path
        The ``.asdf`` file.
    fits_path : path
        A file written by ``write_inversion_fits`` (``fastinv stokes invert``).
    profiles : mapping of str to ndcube.NDCube, optional
        ``<line>_orig`` cubes (e.g. ``FeI630_orig``) of the inverted profiles.

    Returns
    -------
    pathlib.Path
    """
    dkist = require("dkist", "DKIST level-2 ASDF output")
    import astropy.units as u
    from astropy.io import fits
    from astropy.table import Table
    from astropy.wcs import WCS
    from dkist.dataset.inversion import Inversion, Profiles
    from ndcube import NDCube

    fits_path = Path(fits_path)
    with fits.open(fits_path) as hdul:
        primary = hdul[0].header.copy()
        try:
            status = np.asarray(hdul["status"].data)
            nodes = np.asarray(hdul["optical_depth"].data, dtype=np.float64)
        except KeyError:
            raise ValueError(f"{fits_path}: not a fastinv level-2 file (no status / optical_depth HDU)") from None
        cubes = {}
        for h in hdul[1:]:
            name = h.name.lower()
            if name in ("status", "optical_depth"):
                continue
            cubes[name] = (np.asarray(h.data), h.header.copy())
    if not cubes:
        raise ValueError(f"{fits_path}: no quantity HDUs")
    mask = np.broadcast_to(status != 0, (nodes.size, *status.shape))
    items = {}
    wcs = None
    for name, (data, hdr) in cubes.items():
        wcs = WCS(hdr)
        items[name] = NDCube(data, wcs=wcs, unit=u.Unit(hdr.get("BUNIT", "")), mask=np.array(mask))
    items["optical_depth"] = NDCube(
        np.broadcast_to(nodes[:, None, None], mask.shape).astype(np.float32), wcs=wcs, mask=np.array(mask)
    )
    scalar = {k: [v] for k, v in primary.items() if k not in ("COMMENT", "HISTORY", "") and not isinstance(v, bool)}
    meta = {
        "headers": Table(scalar),
        "inventory": {"origin": "fastinv", "level2_fits": fits_path.name, "quantities": sorted(items)},
    }
    # dkist's converter needs aligned axes on a non-empty collection ("all": same shapes)
    prof = Profiles(dict(profiles or {}), aligned_axes="all" if profiles else None)
    inv = Inversion(items, aligned_axes="all", meta=meta, profiles=prof)
    path = Path(path)
    with atomic_output(path) as tmp:
        os.unlink(tmp)  # dkist.save_dataset refuses to overwrite
        dkist.save_dataset(inv, tmp)
    return path
