"""Quicklook PNGs of DEM results: EM maps at a few temperatures, BP and DeepEM side by side."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import numpy as np

from .._atomic import atomic_output
from .._optional import pyplot
from .._plotting import arcsec_extent, failed_legend
from .basis_pursuit import BPResult

__all__ = ["quicklook_png", "comparison_png"]


def _em_row(
    plt, axes, result: BPResult, failed: np.ndarray, temperatures: Sequence[float], label: str = "", extent=None
):
    """EM maps at the bins nearest ``temperatures`` (log10 EM 25..30), failed pixels black."""
    cmap = plt.get_cmap("viridis").with_extremes(bad="black")  # the dark end is not black
    width = float(np.median(np.diff(result.logt))) if result.logt.size > 1 else float("nan")
    for ax, t in zip(axes, temperatures):
        j = int(np.argmin(np.abs(result.logt - t)))
        with np.errstate(invalid="ignore"):
            img = np.log10(np.maximum(result.em[j], 1e20))
        im = ax.imshow(
            np.ma.masked_where(failed | ~np.isfinite(img), img),
            origin="lower",
            cmap=cmap,
            vmin=25,
            vmax=30,
            extent=extent,
            interpolation="nearest",
        )
        ax.set_title(f"{label}log T = {result.logt[j]:.1f} ({width:.2g} dex bin)", fontsize=10)
        if extent is None:
            ax.set_xlabel("x [pixel]")
            ax.set_ylabel("y [pixel]")
        else:
            ax.set_xlabel("Solar X [arcsec]")
            ax.set_ylabel("Solar Y [arcsec]")
    failed_legend(axes[0], failed)
    return im


def _title(method: str, header) -> str:
    date = str(header.get("DATE-OBS", header.get("T_OBS", ""))) if header is not None else ""
    return f"fastinv {method} DEM, SDO/AIA" + (f", {date}" if date else "")


def _extent(header, shape) -> tuple | None:
    if header is None:
        return None
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        return arcsec_extent(WCS(header), *shape)


def quicklook_png(
    path: Union[str, Path],
    result: BPResult,
    temperatures: Sequence[float] = (5.9, 6.3, 7.0),
    header=None,
    method: str = "Basis Pursuit",
) -> None:
    """EM maps at the bins nearest ``temperatures`` (log T), failed pixels in black.

    As DeepEM's Figure 1, titled with ``method`` and the observation date, with axes in arcsec
    when ``header`` (the AIA images' WCS, e.g. ``AIAObservation.header``) is given. Needs
    matplotlib (``pip install "fastinv[plot]"``).
    """
    plt = pyplot()
    if result.em.ndim != 3:
        raise ValueError("quicklook_png needs a map result (em of shape (nT, ny, nx))")
    fig, axes = plt.subplots(1, len(temperatures), figsize=(4.3 * len(temperatures), 4.4), constrained_layout=True)
    axes = np.atleast_1d(axes)
    im = _em_row(plt, axes, result, result.status != 0, temperatures, extent=_extent(header, result.em.shape[1:]))
    fig.colorbar(im, ax=list(axes), label="log10 EM per bin [cm$^{-5}$]", shrink=0.8)
    fig.suptitle(_title(method, header))
    with atomic_output(Path(path)) as tmp:
        fig.savefig(str(tmp), dpi=100, format="png")
    plt.close(fig)


def comparison_png(
    path: Union[str, Path],
    bp_result: BPResult,
    deepem_result: BPResult,
    temperatures: Sequence[float] = (5.9, 6.3, 7.0),
    header=None,
) -> None:
    """Basis Pursuit (top) and DeepEM (bottom) EM maps side by side, as DeepEM's Figure 1:
    pixels where BP failed are black in the BP row."""
    plt = pyplot()
    fig, axes = plt.subplots(
        2, len(temperatures), figsize=(4.3 * len(temperatures), 8.6), constrained_layout=True, squeeze=False
    )
    extent = _extent(header, bp_result.em.shape[1:])
    _em_row(plt, axes[0], bp_result, bp_result.status != 0, temperatures, "BP, ", extent)
    im = _em_row(plt, axes[1], deepem_result, deepem_result.status != 0, temperatures, "DeepEM, ", extent)
    fig.colorbar(im, ax=list(axes.ravel()), label="log10 EM per bin [cm$^{-5}$]", shrink=0.6)
    fig.suptitle(_title("Basis Pursuit vs DeepEM", header))
    with atomic_output(Path(path)) as tmp:
        fig.savefig(str(tmp), dpi=100, format="png")
    plt.close(fig)
