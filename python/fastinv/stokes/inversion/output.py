"""Output of Stokes inversions: FITS maps with DKIST level-2 names and quicklook PNGs.

FITS layout (one file per map, or per ViSP raster step), written atomically:

==================  =================  ====================================================
HDU (EXTNAME)       shape              content
==================  =================  ====================================================
primary             --                 model card summary (INV*), input description, units
``temperature``     (nodes, ny, nx)    K
``velocity``        (nodes, ny, nx)    km/s, line of sight, > 0 = red shift (away)
``mag_strength``    (nodes, ny, nx)    G
``mag_inclination`` (nodes, ny, nx)    deg, 0 = toward the observer
``mag_azimuth``     (nodes, ny, nx)    deg in [0, 180) (180° ambiguous), from +Q
``mag_strength_los`` (nodes, ny, nx)   G (models that learn B_LOS instead, e.g. MUISCA)
``optical_depth``   (nodes,)           log tau_500 of the nodes
``status``          (ny, nx) uint8     0 ok, see :data:`fastinv.stokes.inversion.network.STOKES_STATUS`
``chi2``            (ny, nx)           reduced chi^2 of the LTE re-synthesis (``--chi2`` only;
                                       :mod:`fastinv.stokes.inversion.resynthesis`)
==================  =================  ====================================================

Image axes: x = slit position / raster step, y = along the slit, with the input's celestial
(helioprojective) WCS on FITS axes 1 and 2, and the node index on axis 3 (``LOGTAU``, linear
when the nodes are evenly spaced).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..._atomic import atomic_output
from ..._fits import open_fits, status_meaning_card
from ..._optional import pyplot
from ..._plotting import arcsec_extent, failed_legend
from .network import LEVEL2_NAMES, STOKES_STATUS

#: G: below this transverse field the azimuth is undefined (linear polarisation under the noise).
AZIMUTH_MIN_TRANSVERSE = 300.0

__all__ = ["write_inversion_fits", "quicklook_png", "read_inversion_fits"]

_LABELS = {
    "temperature": "T [K]",
    "vlos": "v$_{LOS}$ [km/s]",
    "B": "|B| [G]",
    "inclination": "inclination [deg]",
    "azimuth": "azimuth [deg]",
    "B_los": "B$_{LOS}$ [G]",
    "vmic": "v$_{mic}$ [km/s]",
    "log_pe": "log P$_e$",
}
_CMAPS = {
    "temperature": "inferno",
    "vlos": "RdBu_r",
    "B": "viridis",
    "inclination": "RdBu_r",
    "azimuth": "twilight",
    "B_los": "RdBu_r",
}


def write_inversion_fits(
    path: str | os.PathLike,
    results: Mapping[str, np.ndarray],
    status: np.ndarray,
    nodes: Sequence[float],
    units: Mapping[str, str],
    wcs=None,
    cards: Mapping[str, tuple] | None = None,
    chi2: np.ndarray | None = None,
    history: Sequence[str] = (),
    checksum: bool = False,
) -> Path:
    """Write inversion maps to FITS (layout in the module docstring), atomically.

    Parameters
    ----------
    results : mapping of quantity -> array (nodes, ny, nx)
        fastinv quantity names (``temperature``, ``vlos``, ``B``, ...); written under their
        DKIST level-2 names (:data:`fastinv.stokes.inversion.network.LEVEL2_NAMES`).
    status : array (ny, nx)
    nodes : log tau_500 of the nodes
    units : quantity -> unit string
    wcs : astropy.wcs.WCS, optional
        2-D celestial WCS of the (ny, nx) image.
    cards : mapping, optional
        Extra primary-header cards (key -> (value, comment)), e.g. the model summary.
    chi2 : array (ny, nx), optional
        Reduced chi^2 of each pixel's re-synthesis, written as the ``chi2`` image.
    history : sequence of str
        HISTORY lines of the primary header (e.g. the input files).
    checksum : bool
        Write CHECKSUM/DATASUM cards (series runs validate their outputs with them).

    Returns
    -------
    pathlib.Path
    """
    from astropy.io import fits

    nodes = np.asarray(nodes, dtype=np.float64)
    img = _image_header(wcs, nodes)
    primary = fits.PrimaryHDU()
    ph = primary.header
    ph["ORIGIN"] = ("fastinv", "fastinv Stokes inversion (1D CNN)")
    ph["VLOSCONV"] = ("positive = red shift", "velocity along the line of sight")
    ph["AZIMCONV"] = ("from +Q, 180 deg ambiguous", "mag_azimuth in [0, 180) deg")
    for key, (value, comment) in dict(cards or {}).items():
        ph[key] = (value, comment)
    for line in history:
        ph.add_history(line)
    hdus = [primary]
    for name, arr in results.items():
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim != 3 or arr.shape[0] != nodes.size:
            raise ValueError(f"result {name!r} must have shape (nodes, ny, nx), got {arr.shape}")
        h = img.copy()
        h["BUNIT"] = units.get(name, "")
        h["QUANTITY"] = (name, "fastinv quantity name")
        hdus.append(fits.ImageHDU(arr, header=h, name=LEVEL2_NAMES.get(name, name)))
    hdus.append(fits.ImageHDU(nodes, name="optical_depth"))
    hdus[-1].header["BUNIT"] = ("", "log10 tau_500")
    sh = img.copy()
    for key in [k for k in sh if k.endswith("3") and k[:-1] in ("CTYPE", "CUNIT", "CRPIX", "CRVAL", "CDELT")]:
        del sh[key]
    sh["WCSAXES"] = 2
    for code, text in STOKES_STATUS.items():
        sh[f"STAT{code}"] = status_meaning_card(text)
    hdus.append(fits.ImageHDU(np.asarray(status, dtype=np.uint8), header=sh, name="status"))
    if chi2 is not None:
        ch = sh.copy()
        for key in [k for k in ch if k.startswith("STAT")]:
            del ch[key]
        ch["BUNIT"] = ("", "reduced chi^2 of the LTE re-synthesis")
        hdus.append(fits.ImageHDU(np.asarray(chi2, dtype=np.float32), header=ch, name="chi2"))
    path = Path(path)
    with atomic_output(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True, checksum=checksum)
    return path


def _image_header(wcs, nodes: np.ndarray):
    from astropy.io import fits

    h = fits.Header()
    if wcs is not None:
        h.update(wcs.to_header())
    h["WCSAXES"] = 3
    d = np.diff(nodes)
    if nodes.size > 1 and np.allclose(d, d[0], rtol=1e-6, atol=1e-9):
        h["CTYPE3"], h["CRPIX3"], h["CRVAL3"], h["CDELT3"] = "LOGTAU", 1.0, float(nodes[0]), float(d[0])
    else:
        h["CTYPE3"], h["CRPIX3"], h["CRVAL3"], h["CDELT3"] = "NODE", 1.0, 0.0, 1.0
    return h


def read_inversion_fits(path: str | os.PathLike) -> dict:
    """Read a file written by :func:`write_inversion_fits`: level-2 name -> array, plus
    ``optical_depth``, ``status`` and ``header`` (primary)."""
    out = {}
    with open_fits(path) as hdul:
        out["header"] = hdul[0].header.copy()
        for h in hdul[1:]:
            out[h.name.lower()] = np.asarray(h.data).copy()
    return out


def quicklook_png(
    path: str | os.PathLike,
    results: Mapping[str, np.ndarray],
    nodes: Sequence[float],
    depths: Sequence[float] = (0.0, -1.0, -2.0),
    title: str = "",
    wcs=None,
    status: np.ndarray | None = None,
    azimuth_min_transverse: float = AZIMUTH_MIN_TRANSVERSE,
) -> Path:
    """Maps of each quantity at the nodes nearest log tau = ``depths`` (needs matplotlib).

    Axes are in arcsec when ``wcs`` (the map's celestial WCS) is given. Pixels with
    ``status != 0`` are drawn grey and counted in a legend; the azimuth is masked (grey) where
    the transverse field B sin(gamma) is below ``azimuth_min_transverse`` G, where the linear
    polarisation is under the noise and the azimuth undefined.

    Raises
    ------
    ImportError
        matplotlib is not installed (``pip install "fastinv[plot]"``).
    """
    plt = pyplot()
    nodes = np.asarray(nodes, dtype=np.float64)
    cols = [int(np.argmin(np.abs(nodes - d))) for d in depths]
    names = list(results)
    ny, nx = np.asarray(results[names[0]]).shape[1:]
    failed = np.zeros((ny, nx), bool) if status is None else np.asarray(status) != 0
    weak = np.zeros((len(nodes), ny, nx), bool)
    if "B" in results and "inclination" in results:
        with np.errstate(invalid="ignore"):
            transverse = np.asarray(results["B"]) * np.sin(np.deg2rad(np.asarray(results["inclination"])))
            weak = ~(transverse >= azimuth_min_transverse)
    extent = arcsec_extent(wcs, ny, nx)
    aspect = ny / max(nx, 1)
    w = 3.2
    fig, axes = plt.subplots(
        len(names), len(cols), figsize=(w * len(cols), max(1.5, w * min(aspect, 3)) * len(names)), squeeze=False
    )
    for r, name in enumerate(names):
        arr = np.asarray(results[name])
        finite = arr[np.isfinite(arr)]
        lo, hi = np.percentile(finite, [1, 99]) if finite.size else (0, 1)
        if name in ("vlos", "B_los"):
            m = max(abs(lo), abs(hi))
            lo, hi = -m, m
        if name == "azimuth":
            lo, hi = 0, 180
        if name == "inclination":  # diverging around a transverse field
            m = max(abs(lo - 90), abs(hi - 90))
            lo, hi = 90 - m, 90 + m
        cmap = plt.get_cmap(_CMAPS.get(name, "viridis")).with_extremes(bad="0.6")
        for c, k in enumerate(cols):
            ax = axes[r, c]
            mask = failed | ~np.isfinite(arr[k])
            if name == "azimuth":
                mask = mask | weak[k]
            im = ax.imshow(
                np.ma.masked_where(mask, arr[k]),
                origin="lower",
                cmap=cmap,
                vmin=lo,
                vmax=hi,
                aspect="auto",
                interpolation="nearest",
                extent=extent,
            )
            label = f"{_LABELS.get(name, name)}, log τ = {nodes[k]:g}"
            if name == "azimuth":
                label += f"\n(grey: B sin γ < {azimuth_min_transverse:g} G)"
            ax.set_title(label, fontsize=9)
            if extent is None:
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.tick_params(labelsize=7)
                if r == len(names) - 1:
                    ax.set_xlabel("Solar X [arcsec]", fontsize=8)
                if c == 0:
                    ax.set_ylabel("Solar Y [arcsec]", fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
    failed_legend(axes[0, 0], failed, color="0.6")
    date = getattr(getattr(wcs, "wcs", None), "dateobs", "") if wcs is not None else ""
    if title or date:
        fig.suptitle(", ".join(t for t in (title, date) if t), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97) if (title or date) else None)
    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return path
