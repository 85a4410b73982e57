"""DEM results as an ``ndcube.NDCube`` (``BPResult.to_ndcube``), so sunpy tools can slice,
reproject and plot them: the EM cube with the input's celestial WCS plus a log T axis, the
temperature as an extra coordinate, the Monte-Carlo errors as ``StdDevUncertainty`` and the
status as the mask."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from .._optional import require

__all__ = ["to_ndcube"]


def to_ndcube(result: Any, header: Any) -> Any:
    """The EM of a map result as an NDCube.

    Parameters
    ----------
    result : BPResult
        A map result: ``em`` of shape (nT, ny, nx) on a uniform log T grid.
    header : astropy.io.fits.Header or mapping
        The celestial WCS keywords of the input (``AIAObservation.header``).

    Returns
    -------
    ndcube.NDCube
        Data: EM per log T bin in cm^-5 (array axes T, y, x; NaN where the status is not 0).
        WCS: the input's celestial WCS plus a linear ``LOG10T`` axis (bin centres).
        ``extra_coords["temperature"]``: the bin centres in K. Uncertainty:
        ``StdDevUncertainty(em_err)`` when the result has Monte-Carlo errors. Mask: True
        where the status is not 0. ``meta``: status, chi2, logt, method keywords.
    """
    ndcube = require("ndcube", "DEM results as NDCubes")
    import astropy.units as u
    from astropy.io import fits
    from astropy.nddata import StdDevUncertainty
    from astropy.wcs import WCS, FITSFixedWarning

    em = np.asarray(result.em)
    if em.ndim != 3:
        raise ValueError(f"to_ndcube needs a map result (em of shape (nT, ny, nx)), got {em.shape}")
    logt = np.asarray(result.logt, dtype=np.float64)
    step = np.diff(logt)
    if logt.size < 2 or not np.allclose(step, step[0], rtol=1e-9, atol=1e-12):
        raise ValueError("to_ndcube needs a uniform log T grid (a FITS WCS axis is linear)")
    hdr = fits.Header()
    for key, value in dict(header).items():
        if key not in ("COMMENT", "HISTORY", ""):
            hdr[key] = value
    if "CTYPE1" not in hdr or "CTYPE2" not in hdr:
        raise ValueError("the header has no celestial WCS (CTYPE1/CTYPE2): pass the input's header")
    hdr["NAXIS"] = 3
    hdr["WCSAXES"] = 3
    hdr["CTYPE3"], hdr["CUNIT3"] = "LOG10T", ""
    hdr["CRPIX3"], hdr["CRVAL3"], hdr["CDELT3"] = 1.0, float(logt[0]), float(step[0])
    with warnings.catch_warnings():  # astropy's 'datfix' notes that it set MJD-OBS from DATE-OBS
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(hdr)
    status = np.asarray(result.status)
    failed = np.broadcast_to(status != 0, em.shape)
    data = np.where(failed, np.nan, em)
    em_err = getattr(result, "em_err", None)
    uncertainty = None
    if em_err is not None:
        uncertainty = StdDevUncertainty(np.where(failed, np.nan, np.asarray(em_err)), unit=u.cm**-5)
    cube = ndcube.NDCube(
        data,
        wcs=wcs,
        uncertainty=uncertainty,
        mask=np.array(failed),
        unit=u.cm**-5,
        meta={"status": status, "chi2": np.asarray(result.chi2), "logt": logt},
    )
    cube.extra_coords.add("temperature", 0, (10.0**logt) * u.K, physical_types="phys.temperature")
    return cube
