"""AIA Basis Pursuit pipeline: six FITS files in, a DEM FITS cube (and a quicklook PNG) out.

Examples
--------
>>> from fastinv import datasets
>>> from fastinv.dem.aia import read_aia
>>> obs = read_aia(datasets.aia_flare_files())
>>> obs.data.shape, obs.n_sample
((6, 67, 67), 1.0)
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np

from .._atomic import atomic_output
from .basis_pursuit import STATUS, BasisPursuit, BPResult
from .response import AIA_CHANNELS

__all__ = ["AIAObservation", "read_aia", "write_dem_fits", "quicklook_png", "comparison_png", "run_bp",
           "run_deepem",
           "ProgressBar"]

# Header keywords of the celestial WCS and the observer that the output keeps.
_WCS_KEYS = ("CTYPE1", "CTYPE2", "CUNIT1", "CUNIT2", "CRVAL1", "CRVAL2", "CDELT1", "CDELT2",
             "CRPIX1", "CRPIX2", "CROTA2", "PC1_1", "PC1_2", "PC2_1", "PC2_2", "DATE-OBS",
             "T_OBS", "DSUN_OBS", "DSUN_REF", "HGLN_OBS", "HGLT_OBS", "CRLN_OBS", "CRLT_OBS",
             "RSUN_REF", "RSUN_OBS", "TELESCOP", "LONPOLE", "LATPOLE")


@dataclass
class AIAObservation:
    """Six AIA channels on one pixel grid, in DN s^-1 pixel^-1.

    Attributes
    ----------
    data : ndarray (6, ny, nx)
        DN/s, channels 94, 131, 171, 193, 211, 335 (NaN where the input was not finite).
    exptime : ndarray (6,)
        Exposure times in s.
    n_sample : float
        Original pixels averaged per pixel (N*N after N x N binning).
    header : astropy.io.fits.Header
        Celestial WCS and observer keywords (of the 171 A image), binning applied.
    files : list of str
        Input names, in channel order.
    """

    data: np.ndarray
    exptime: np.ndarray
    n_sample: float
    header: "object"
    files: list = field(default_factory=list)


def _load_one(item) -> tuple:
    """(data, header, name) from a FITS path or a sunpy Map."""
    from astropy.io import fits

    if hasattr(item, "data") and hasattr(item, "meta"):  # sunpy Map
        hdr = fits.Header()
        for k, v in item.meta.items():
            if isinstance(v, (str, int, float, bool)) and len(str(k)) <= 8:
                try:
                    hdr[str(k).upper()] = v
                except ValueError:
                    pass
        return np.asarray(item.data, dtype=np.float64), hdr, str(getattr(item, "name", "map"))
    path = Path(item)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    import warnings

    with warnings.catch_warnings():
        # AIA level-1 float images carry a BLANK keyword astropy warns about; harmless.
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        with fits.open(path, memmap=False) as hdul:
            return _first_image(hdul, path)


def _first_image(hdul, path: Path) -> tuple:
    for hdu in hdul:  # first image HDU with data (RICE-compressed data live in HDU 1)
        if hdu.data is not None and getattr(hdu.data, "ndim", 0) == 2:
            return np.asarray(hdu.data, dtype=np.float64), hdu.header.copy(), str(path)
    raise ValueError(f"{path}: no 2-d image in this FITS file")


def _bin(a: np.ndarray, n: int) -> np.ndarray:
    ny, nx = (a.shape[-2] // n) * n, (a.shape[-1] // n) * n
    a = a[..., :ny, :nx]
    return a.reshape(a.shape[:-2] + (ny // n, n, nx // n, n)).mean(axis=(-3, -1))


def read_aia(inputs: Sequence[Union[str, Path, object]], bin: int = 1,
             presummed: float = 1.0) -> AIAObservation:
    """Read six AIA level-1/1.5 images (FITS paths or sunpy Maps) in any order.

    Parameters
    ----------
    inputs : sequence
        Exactly one image per channel 94, 131, 171, 193, 211, 335 (WAVELNTH keyword).
    bin : int
        N x N block averaging (edges that do not fill a block are dropped); the error model
        then uses n_sample = N*N.
    presummed : float
        Original pixels already averaged into each input pixel (e.g. 16 for the 1024^2 AIA
        synoptic images, which are 4x4 means); multiplies n_sample.

    Returns
    -------
    AIAObservation

    Raises
    ------
    ValueError
        A missing or duplicated channel, mismatched shapes, EXPTIME <= 0, or not AIA data.
    """
    if int(bin) != bin or bin < 1:
        raise ValueError("bin must be an integer >= 1")
    if not (np.isfinite(presummed) and presummed >= 1):
        raise ValueError("presummed must be >= 1 (original pixels per input pixel)")
    bin = int(bin)
    by_chan: dict[int, tuple] = {}
    for item in inputs:
        data, hdr, name = _load_one(item)
        tel = str(hdr.get("TELESCOP", "")) + " " + str(hdr.get("INSTRUME", ""))
        if "AIA" not in tel.upper():
            raise ValueError(f"{name}: not SDO/AIA data (TELESCOP/INSTRUME = {tel.strip()!r})")
        try:
            wave = int(round(float(hdr["WAVELNTH"])))
        except (KeyError, ValueError, TypeError):
            raise ValueError(f"{name}: no usable WAVELNTH keyword") from None
        if wave not in AIA_CHANNELS:
            raise ValueError(f"{name}: channel {wave} A is not one of {AIA_CHANNELS}")
        if wave in by_chan:
            raise ValueError(f"channel {wave} A given twice: {by_chan[wave][2]} and {name}")
        by_chan[wave] = (data, hdr, name)
    missing = [c for c in AIA_CHANNELS if c not in by_chan]
    if missing:
        raise ValueError(f"missing AIA channel(s) {missing} A: give one image for each of "
                         f"{AIA_CHANNELS}")
    shapes = {c: by_chan[c][0].shape for c in AIA_CHANNELS}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"the six images must have the same shape, got {shapes}")
    cube, expt = [], []
    for c in AIA_CHANNELS:
        data, hdr, name = by_chan[c]
        t = float(hdr.get("EXPTIME", np.nan))
        if not np.isfinite(t) or t <= 0:
            raise ValueError(f"{name}: EXPTIME = {hdr.get('EXPTIME')!r}; need an exposure > 0 s")
        unit = str(hdr.get("BUNIT", hdr.get("PIXLUNIT", "DN"))).replace(" ", "").lower()
        per_second = unit.endswith("/s") or unit.endswith("s-1") or unit.endswith("s^-1")
        cube.append(data if per_second else data / t)
        expt.append(t)
    y = np.stack(cube)
    ref = by_chan[171][1]
    from astropy.io import fits

    hdr = fits.Header()
    for k in _WCS_KEYS:
        if k in ref:
            hdr[k] = ref[k]
    if bin > 1:
        y = _bin(y, bin)
        for ax in ("1", "2"):
            if "CDELT" + ax in hdr:
                hdr["CDELT" + ax] = hdr["CDELT" + ax] * bin
            if "CRPIX" + ax in hdr:
                hdr["CRPIX" + ax] = (hdr["CRPIX" + ax] - 0.5) / bin + 0.5
    return AIAObservation(data=y, exptime=np.array(expt), n_sample=float(bin * bin * presummed),
                          header=hdr, files=[by_chan[c][2] for c in AIA_CHANNELS])


class ProgressBar:
    """A minimal text progress bar on stderr (silent when ``enabled`` is False)."""

    def __init__(self, total: int, enabled: bool = True, width: int = 40, stream=None,
                 unit: str = "px") -> None:
        self.total, self.enabled, self.width, self.unit = max(int(total), 1), enabled, width, unit
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0

    def update(self, n: int) -> None:
        self.done = min(self.total, self.done + n)
        if self.enabled:
            f = self.done / self.total
            bar = "#" * int(f * self.width)
            self.stream.write(f"\r[{bar:<{self.width}}] {100 * f:5.1f}% "
                              f"({self.done}/{self.total} {self.unit})")
            if self.done == self.total:
                self.stream.write("\n")
            self.stream.flush()


def _atomic_write(path: Path, write: Callable[[str], None]) -> None:
    with atomic_output(path) as tmp:
        write(str(tmp))


def write_dem_fits(path: Union[str, Path], result: BPResult, bp: Optional[BasisPursuit] = None,
                   obs: Optional[AIAObservation] = None, method_cards: Optional[dict] = None) -> None:
    """Write a DEM result as FITS (atomically: temp file in the same directory, then rename).

    HDUs: primary = EM cube (nT, ny, nx) in cm^-5 with a log T axis (axis 3) plus the input's
    celestial WCS; ``STATUS``, ``TOLFAC``, ``CHI2``, ``LOGT_EM`` (EM-weighted log T) and
    ``EM_TOTAL`` maps; ``LOGT`` (the grid). For a Basis Pursuit result (``bp`` given) the
    header records the response table (name and SHA-256), grid, basis widths and tolerances;
    other methods (DeepEM) pass their own provenance as ``method_cards`` (keyword -> value or
    (value, comment)).
    """
    from astropy.io import fits

    from .. import __version__

    if result.em.ndim != 3:
        raise ValueError("write_dem_fits needs a map result (em of shape (nT, ny, nx))")
    if bp is None and not method_cards:
        raise ValueError("write_dem_fits needs either the BasisPursuit solver or method_cards")
    base = fits.Header()
    if obs is not None:
        base.update(obs.header)
    prim = base.copy()
    lt = result.logt
    prim["CTYPE3"] = ("LOG10T", "log10(T / K), bin centre")
    prim["CUNIT3"] = ""
    prim["CRPIX3"] = 1.0
    prim["CRVAL3"] = float(lt[0])
    step = np.diff(lt)
    prim["CDELT3"] = (float(step.mean()), "uniform grid" if np.allclose(step, step[0])
                      else "NON-uniform: see the LOGT HDU")
    prim["BUNIT"] = ("cm-5", "emission measure per log T bin")
    prim["FI_VERS"] = (__version__, "fastinv version")
    prim["FI_NT"] = (int(lt.size), "number of log T bins")
    prim["FI_TMIN"] = float(lt[0])
    prim["FI_TMAX"] = float(lt[-1])
    if bp is not None:
        prim["CONTENT"] = "DEM: Basis Pursuit (Cheung et al. 2015)"
        prim["FI_METH"] = ("basis pursuit", "min sum x: |Dx-y| <= tolfac*sigma, x >= 0")
        prim["FI_RESP"] = (bp.response_name, "temperature response table")
        if bp.response_table is not None:
            prim["FI_RSHA"] = bp.response_table.sha256  # SHA-256 of the response table file
        prim["FI_WIDTH"] = (",".join(f"{w:g}" for w in bp.widths), "Gaussian basis widths (+Dirac)")
        prim["FI_BCUT"] = (0.04, "basis values below this set to 0")
        prim["FI_NCOEF"] = (bp.ncoef, "dictionary columns")
        prim["FI_DICTF"] = (1e26, "coefficient unit, cm-5")
        prim["FI_TOLF"] = (bp.tolfac, "eta = tolfac * sigma")
        prim["FI_TOLFS"] = (",".join(f"{t:g}" for t in bp.tolfacs), "tolfacs tried (adaptive)")
        prim["FI_ERR"] = ("aia_bp_estimate_error V3", "sigma model (unless user sigma)")
    for key, value in (method_cards or {}).items():
        prim[key] = value
    if obs is not None:
        prim["FI_NSAMP"] = (obs.n_sample, "pixels averaged per pixel (binning)")
        for c, t, f in zip(AIA_CHANNELS, obs.exptime, obs.files):
            prim[f"EXPT{c:03d}"] = (float(t), f"EXPTIME of {c} A, s")
            prim.add_history(f"input {c} A: {Path(f).name}")
    for code, text in STATUS.items():
        prim.add_comment(f"STATUS {code}: {text}")
    maps = fits.Header()
    if obs is not None:
        maps.update(obs.header)
    hdus = [fits.PrimaryHDU(result.em.astype(np.float32), header=prim)]
    with np.errstate(invalid="ignore"):
        extra = {"STATUS": result.status.astype(np.int16), "TOLFAC": result.tolfac.astype(np.float32),
                 "CHI2": result.chi2.astype(np.float32),
                 "LOGT_EM": result.logt_mean.astype(np.float32),
                 "EM_TOTAL": result.total_em.astype(np.float32)}
    for name, arr in extra.items():
        h = maps.copy()
        if name == "EM_TOTAL":
            h["BUNIT"] = "cm-5"
        hdus.append(fits.ImageHDU(arr, header=h, name=name))
    hdus.append(fits.ImageHDU(np.asarray(lt, dtype=np.float64), name="LOGT"))
    hdul = fits.HDUList(hdus)
    _atomic_write(Path(path), lambda tmp: hdul.writeto(tmp, overwrite=True))


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("quicklook PNGs need matplotlib: pip install matplotlib") from None
    return plt


def _em_row(plt, axes, result: BPResult, failed: np.ndarray, temperatures: Sequence[float], label: str = ""):
    """EM maps at the bins nearest ``temperatures`` (log10 EM 25..30), failed pixels black."""
    cmap = plt.get_cmap("viridis").with_extremes(bad="black")  # the dark end is not black
    for ax, t in zip(axes, temperatures):
        j = int(np.argmin(np.abs(result.logt - t)))
        img = np.log10(np.maximum(result.em[j], 1e20))
        im = ax.imshow(np.ma.masked_where(failed, img), origin="lower", cmap=cmap, vmin=25, vmax=30)
        ax.set_title(f"{label}log T = {result.logt[j]:.1f}")
        ax.set_xticks([])
        ax.set_yticks([])
    return im


def quicklook_png(path: Union[str, Path], result: BPResult,
                  temperatures: Sequence[float] = (5.9, 6.3, 7.0)) -> None:
    """EM maps at the bins nearest ``temperatures`` (log T), failed pixels in black.

    As DeepEM's Figure 1. Needs matplotlib (``pip install matplotlib``).
    """
    plt = _pyplot()
    if result.em.ndim != 3:
        raise ValueError("quicklook_png needs a map result (em of shape (nT, ny, nx))")
    fig, axes = plt.subplots(1, len(temperatures), figsize=(4 * len(temperatures), 4),
                             constrained_layout=True)
    axes = np.atleast_1d(axes)
    im = _em_row(plt, axes, result, result.status != 0, temperatures)
    fig.colorbar(im, ax=list(axes), label="log10 EM [cm$^{-5}$]", shrink=0.8)
    _atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def comparison_png(path: Union[str, Path], bp_result: BPResult, deepem_result: BPResult,
                   temperatures: Sequence[float] = (5.9, 6.3, 7.0)) -> None:
    """Basis Pursuit (top) and DeepEM (bottom) EM maps side by side, as DeepEM's Figure 1:
    pixels where BP failed are black in the BP row."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(temperatures), figsize=(4 * len(temperatures), 8),
                             constrained_layout=True, squeeze=False)
    _em_row(plt, axes[0], bp_result, bp_result.status != 0, temperatures, "BP, ")
    im = _em_row(plt, axes[1], deepem_result, deepem_result.status != 0, temperatures, "DeepEM, ")
    fig.colorbar(im, ax=list(axes.ravel()), label="log10 EM [cm$^{-5}$]", shrink=0.6)
    _atomic_write(Path(path), lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)


def run_bp(inputs: Sequence, output: Union[str, Path], png: Optional[Union[str, Path]] = None,
           bin: int = 1, threads: Optional[int] = None, response=None,
           progress: bool = True, chunk_rows: Optional[int] = None,
           presummed: float = 1.0, keep_coeffs: bool = False) -> BPResult:
    """Read six AIA images, solve BP for every pixel, write FITS (and a PNG).

    Parameters
    ----------
    inputs : sequence of paths or sunpy Maps
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

    Returns
    -------
    BPResult
    """
    obs = read_aia(inputs, bin=bin, presummed=presummed)
    bp = BasisPursuit(response=response)
    ny, nx = obs.data.shape[1:]
    rows = chunk_rows or max(1, 16384 // max(nx, 1))
    bar = ProgressBar(ny * nx, enabled=progress)
    parts = []
    for r0 in range(0, ny, rows):
        part = bp.solve(obs.data[:, r0:r0 + rows], exptime=obs.exptime, threads=threads,
                        n_sample=obs.n_sample)
        # Keep memory bounded on 4096^2 images: EM in float32 (as written to the FITS file),
        # coefficients (84 per pixel) only on request.
        part.em = part.em.astype(np.float32)
        if not keep_coeffs:
            part.coeffs = None
        parts.append(part)
        bar.update(part.status.size)
    cat = {name: np.concatenate([getattr(p, name) for p in parts], axis=-2)
           for name in ("em", "model")}
    cat["coeffs"] = (np.concatenate([p.coeffs for p in parts], axis=-2) if keep_coeffs
                     else None)
    cat.update({name: np.concatenate([getattr(p, name) for p in parts], axis=0)
                for name in ("status", "tolfac", "objective", "chi2", "iterations")})
    res = BPResult(logt=bp.logt.copy(), **cat)
    write_dem_fits(output, res, bp, obs)
    if png is not None:
        quicklook_png(png, res)
    return res


def run_deepem(inputs: Sequence, output: Union[str, Path], png: Optional[Union[str, Path]] = None,
               compare_png: Optional[Union[str, Path]] = None, bin: int = 1, threads: Optional[int] = None,
               model: Optional[Union[str, Path]] = None):
    """Read six AIA images, run DeepEM on every pixel with fastinv's engine, write FITS.

    Parameters
    ----------
    inputs : sequence of paths or sunpy Maps
    output : path
        FITS file (same layout as :func:`run_bp`), replaced atomically.
    png : path, optional
        Quicklook PNG at log T 5.9, 6.3, 7.0.
    compare_png : path, optional
        Also run Basis Pursuit on the same 18-bin grid and write BP and DeepEM side by side
        (BP failures black).
    bin : int
        N x N binning.
    threads : int, optional
        Threads.
    model : path, optional
        A DeepEM model file (default: the shipped one).

    Returns
    -------
    (BPResult, BPResult or None)
        DeepEM's result, and BP's when ``compare_png`` was asked for.
    """
    from .basis_pursuit import DEEPEM_LOGT
    from .deepem import DeepEM

    obs = read_aia(inputs, bin=bin)
    net = DeepEM.load(model, threads=threads)
    res = net.invert(obs.data, exptime=obs.exptime, n_sample=obs.n_sample)
    write_dem_fits(output, res, obs=obs, method_cards=net.fits_cards())
    if png is not None:
        quicklook_png(png, res)
    bp_res = None
    if compare_png is not None:
        bp_res = BasisPursuit(logt=DEEPEM_LOGT).solve(obs.data, exptime=obs.exptime, n_sample=obs.n_sample,
                                                     threads=threads)
        comparison_png(compare_png, bp_res, res)
    return res, bp_res
