"""The two AIA DEM pipelines behind ``fastinv dem bp`` and ``fastinv dem deepem``: six images
in, a DEM FITS file (and quicklook PNGs) out."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .._atomic import check_outputs
from .._progress import progress_bar
from .basis_pursuit import BasisPursuit, BPResult
from .deepem import DeepEM
from .io import read_aia, write_dem_fits
from .plots import comparison_png, quicklook_png

__all__ = ["run_bp", "run_deepem"]


def _paths(inputs: Sequence) -> list:
    """The inputs that are files (not sunpy Maps)."""
    return [i for i in inputs if isinstance(i, (str, os.PathLike))]


def run_bp(
    inputs: Sequence,
    output: Union[str, Path],
    png: Optional[Union[str, Path]] = None,
    bin: int = 1,
    threads: Optional[int] = None,
    response=None,
    progress: bool = True,
    chunk_rows: Optional[int] = None,
    presummed: float = 1.0,
    keep_coeffs: bool = False,
    errors: int = 0,
    seed: int = 0,
    overwrite: bool = False,
) -> BPResult:
    """Read six AIA images, solve BP for every pixel, write FITS (and a PNG).

    Parameters
    ----------
    inputs : sequence of paths or sunpy Maps, or a sunpy MapSequence
    output : path
        FITS file to write (replaced atomically).
    png : path, optional
        Quicklook PNG (needs matplotlib).
    bin : int
        N x N binning.
    threads : int, optional
        OpenMP threads.
    response : str or path, optional
        Response table name or CSV (default ``aia_v10_eve``).
    progress : bool
        Show a progress bar on stderr.
    presummed : float
        Original pixels averaged into each input pixel (16 for AIA synoptic images).
    keep_coeffs : bool
        Keep the basis coefficients in the returned result (84 float64 per pixel: 11 GB for
        a 4096^2 image); by default ``coeffs`` is None and ``em`` is float32.
    errors : int
        Monte-Carlo draws per pixel for 1-sigma errors (``BasisPursuit.solve(n_samples=...)``;
        each costs about one warm-started re-solve); 0: none.
    seed : int
        Seed of the draws (the errors depend on it and on the pixel only).
    overwrite : bool
        Replace existing output files (never an input, see :func:`fastinv._atomic.check_outputs`).

    Returns
    -------
    BPResult
        With ``header`` set, so ``res.to_ndcube()`` works.

    Raises
    ------
    ValueError
        An output is an input or two outputs are the same file (checked before any work).
    FileExistsError
        An output exists and ``overwrite`` is False.
    """
    check_outputs([output, png], _paths(inputs), overwrite)
    obs = read_aia(inputs, bin=bin, presummed=presummed)
    bp = BasisPursuit(response=response)
    ny, nx = obs.data.shape[1:]
    rows = chunk_rows or max(1, 16384 // max(nx, 1))
    bar = progress_bar(ny * nx, desc="Basis Pursuit", unit="px", enabled=progress)
    parts = []
    for r0 in range(0, ny, rows):
        part = bp.solve(
            obs.data[:, r0 : r0 + rows],
            exptime=obs.exptime,
            threads=threads,
            n_sample=obs.n_sample,
            n_samples=errors,
            seed=seed,
            first_pixel=r0 * nx,
        )
        # Keep memory bounded on 4096^2 images: EM in float32 (as written to the FITS file),
        # coefficients (84 per pixel) only on request.
        part.em = part.em.astype(np.float32)
        if not keep_coeffs:
            part.coeffs = None
        parts.append(part)
        bar.update(part.status.size)
    bar.close()
    cat = {name: np.concatenate([getattr(p, name) for p in parts], axis=-2) for name in ("em", "model")}
    cat["coeffs"] = np.concatenate([p.coeffs for p in parts], axis=-2) if keep_coeffs else None
    cat.update(
        {
            name: np.concatenate([getattr(p, name) for p in parts], axis=0)
            for name in ("status", "tolfac", "objective", "chi2", "iterations")
        }
    )
    if errors:
        cat["em_err"] = np.concatenate([p.em_err for p in parts], axis=-2)
        cat.update(
            {
                name: np.concatenate([getattr(p, name) for p in parts], axis=0)
                for name in ("logt_err", "total_em_err", "mc_feasible")
            }
        )
    res = BPResult(logt=bp.logt.copy(), mc_samples=int(errors), mc_seed=int(seed), header=obs.header, **cat)
    write_dem_fits(output, res, bp, obs)
    if png is not None:
        quicklook_png(png, res, header=obs.header, method="Basis Pursuit")
    return res


def run_deepem(
    inputs: Sequence,
    output: Union[str, Path],
    png: Optional[Union[str, Path]] = None,
    compare_png: Optional[Union[str, Path]] = None,
    bin: int = 1,
    threads: Optional[int] = None,
    model: Optional[Union[str, Path]] = None,
    overwrite: bool = False,
    refine: bool = False,
    errors: bool = False,
):
    """Read six AIA images, run DeepEM on every pixel with fastinv's engine, write FITS.

    Parameters
    ----------
    inputs : sequence of paths or sunpy Maps, or a sunpy MapSequence
    output : path
        FITS file (same layout as :func:`run_bp`), replaced atomically.
    png : path, optional
        Quicklook PNG at log T 5.9, 6.3, 7.0.
    compare_png : path, optional
        Also run Basis Pursuit on the model's grid and write BP and DeepEM side by side
        (BP failures black).
    bin : int
        N x N binning.
    threads : int, optional
        Threads.
    model : path or str, optional
        A DeepEM model file or a shipped model's name (``"deepem18"``, ``"deepem21"``;
        default: the default shipped model).
    overwrite : bool
        Replace existing output files (never an input or the model).
    refine : bool
        Refine each pixel's EM to fit the data within Basis Pursuit's band
        (``DeepEM.invert(refine=True)``); the file gains a ``REFINE`` map.
    errors : bool
        Also the calibrated 1-sigma errors (``DeepEM.invert(..., errors=True)``), written as
        the ``EM_ERR``, ``LOGT_EM_ERR`` and ``EM_TOTAL_ERR`` HDUs.

    Returns
    -------
    (BPResult, BPResult or None)
        DeepEM's result, and BP's when ``compare_png`` was asked for.

    Raises
    ------
    ValueError
        An output is an input (or the model), or two outputs are the same file.
    FileExistsError
        An output exists and ``overwrite`` is False.
    """
    check_outputs([output, png, compare_png], _paths(inputs) + ([model] if model is not None else []), overwrite)
    obs = read_aia(inputs, bin=bin)
    net = DeepEM.load(model, threads=threads)
    res = net.invert(obs.data, exptime=obs.exptime, n_sample=obs.n_sample, refine=refine, errors=errors)
    res.header = obs.header
    cards = net.fits_cards()
    refine_status = None
    if refine:  # zero iterations: the LP started feasible at the network's EM, which it kept
        refine_status = np.where(res.status != 0, res.status, (res.iterations > 0).astype(np.int8))
        cards["FI_REFIN"] = (True, "EM refined into BP's band (L1-closest)")
    write_dem_fits(output, res, obs=obs, method_cards=cards, refine_status=refine_status)
    if png is not None:
        quicklook_png(png, res, header=obs.header, method="DeepEM")
    bp_res = None
    if compare_png is not None:
        bp_res = BasisPursuit(logt=net.logt).solve(
            obs.data, exptime=obs.exptime, n_sample=obs.n_sample, threads=threads
        )
        comparison_png(compare_png, bp_res, res, header=obs.header)
    return res, bp_res
