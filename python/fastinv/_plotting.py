"""Pieces every quicklook PNG shares: axes in arcsec from a celestial WCS, and a legend entry
for the pixels that carry no result."""

from __future__ import annotations

import numpy as np

__all__ = ["arcsec_extent", "failed_legend"]


def arcsec_extent(wcs, ny: int, nx: int) -> tuple[float, float, float, float] | None:
    """(x0, x1, y0, y1) of the image's pixel edges in arcsec for ``imshow(extent=...)``, from
    a celestial WCS (helioprojective, any CUNIT); None when there is no celestial WCS.

    Examples
    --------
    >>> from astropy.wcs import WCS
    >>> w = WCS(naxis=2)
    >>> w.wcs.ctype = ["HPLN-TAN", "HPLT-TAN"]; w.wcs.cunit = ["arcsec", "arcsec"]
    >>> w.wcs.cdelt = [0.6, 0.6]; w.wcs.crpix = [1, 1]; w.wcs.crval = [100, -50]
    >>> [round(v, 6) for v in arcsec_extent(w, 2, 3)]
    [99.7, 101.5, -50.3, -49.1]
    """
    from astropy import units as u

    if wcs is None or not getattr(wcs, "has_celestial", False):
        return None
    cel = wcs.celestial
    corners = cel.wcs_pix2world(np.array([[-0.5, -0.5], [nx - 0.5, ny - 0.5]]), 0)
    scale = [u.Unit(str(cu) or "deg").to(u.arcsec) for cu in cel.wcs.cunit]
    (x0, y0), (x1, y1) = corners * np.asarray(scale)
    return float(x0), float(x1), float(y0), float(y1)


def failed_legend(ax, failed: np.ndarray, color: str = "black") -> None:
    """A legend entry naming the pixels shown in ``color`` because they have no result."""
    from matplotlib.patches import Patch

    n = int(np.count_nonzero(failed))
    if n:
        ax.legend(
            handles=[Patch(color=color, label=f"no result (status != 0): {n} px")],
            loc="lower left",
            fontsize=7,
            framealpha=0.8,
        )
