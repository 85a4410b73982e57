"""``fastinv demo``: the main job on the bundled data.

Six real AIA cutouts of the 2011-02-15 X2.2 flare (one time step, shipped with fastinv)
are inverted by Basis Pursuit and by the shipped DeepEM network; FITS files and
quicklook PNGs are written into a folder, and timings and the agreement of the two
methods are printed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np

from . import datasets, info
from .dem.basis_pursuit import BasisPursuit, aia_error
from .dem.deepem import DeepEM
from .dem.evaluate import compare
from .dem.io import read_aia, write_dem_fits
from .dem.plots import comparison_png, quicklook_png


def run_demo(out: str | Path = "fastinv-demo", threads: Optional[int] = None, echo=print) -> dict:
    """Run the demo; returns the timings and metrics it printed."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = datasets.aia_flare_files()
    obs = read_aia(files)
    npix = obs.data[0].size
    engine = info()
    echo(f"fastinv {engine['version']} ({engine['isa']} kernels, {engine['threads']} threads)")
    echo(
        f"input: {len(files)} AIA level-1 cutouts of the 2011-02-15 X2.2 flare, {obs.data.shape[2]}x"
        f"{obs.data.shape[1]} px ({datasets.BUNDLED_FLARE_SLOT})"
    )

    bp = BasisPursuit()
    t0 = time.perf_counter()
    r_bp = bp.solve(obs.data, exptime=obs.exptime, n_sample=obs.n_sample, threads=threads)
    t_bp = time.perf_counter() - t0
    write_dem_fits(out / "dem_bp.fits", r_bp, bp, obs)
    echo(
        f"Basis Pursuit, {bp.logt.size} log T bins: {t_bp * 1e3:.1f} ms ({npix / t_bp:,.0f} pixels/s), "
        f"{r_bp.ok.mean():.1%} of pixels solved -> {out / 'dem_bp.fits'}"
    )

    net = DeepEM.load(threads=threads)
    net.invert(obs.data[:, :4, :4])  # first call packs the weights
    t0 = time.perf_counter()
    r_dl = net.invert(obs.data, exptime=obs.exptime, n_sample=obs.n_sample)
    t_dl = time.perf_counter() - t0
    write_dem_fits(out / "dem_deepem.fits", r_dl, obs=obs, method_cards=net.fits_cards())
    echo(
        f"DeepEM, {len(net.logt)} log T bins: {t_dl * 1e3:.1f} ms ({npix / t_dl:,.0f} pixels/s) "
        f"-> {out / 'dem_deepem.fits'}"
    )

    r_bp_net = BasisPursuit(logt=net.logt).solve(obs.data, exptime=obs.exptime, n_sample=obs.n_sample, threads=threads)
    t = obs.exptime.reshape(6, 1, 1)
    sigma = aia_error(np.maximum(np.nan_to_num(obs.data), 0.0) * t, obs.n_sample) / t
    m = compare(r_bp_net, r_dl, obs.data, sigma)
    echo(f"DeepEM vs Basis Pursuit (same {len(net.logt)}-bin grid):")
    echo(f"  median |dEM|/EM over significant bins: {m['rel_err_median_all_bins']:.2f}")
    echo(
        f"  EM-weighted log T difference: median {m['logt_em']['median_abs_diff']:.3f} dex, "
        f"90th percentile {m['logt_em']['p90_abs_diff']:.3f} dex"
    )
    echo(
        f"  total EM ratio DeepEM/BP: median {m['total_em_ratio']['median']:.2f} "
        f"(10-90 %: {m['total_em_ratio']['p10']:.2f}-{m['total_em_ratio']['p90']:.2f})"
    )
    echo(f"  DeepEM re-synthesis within BP's 1.4 sigma band: {m['within_tolerance']:.1%} of BP-solved pixels")
    try:
        quicklook_png(out / "dem_bp.png", r_bp, header=obs.header, method="Basis Pursuit")
        quicklook_png(out / "dem_deepem.png", r_dl, header=obs.header, method="DeepEM")
        comparison_png(out / "bp_vs_deepem.png", r_bp_net, r_dl, header=obs.header)
        echo(f"quicklook PNGs: {out / 'dem_bp.png'}, {out / 'dem_deepem.png'}, {out / 'bp_vs_deepem.png'}")
    except ImportError as exc:
        echo(f"(no PNGs: {exc})")
    return {"bp_seconds": t_bp, "deepem_seconds": t_dl, "pixels": npix, "agreement": m}
