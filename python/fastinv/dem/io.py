"""SDO/AIA files in, DEM FITS files out.

:func:`read_aia` reads six AIA level-1/1.5 images (FITS or sunpy Maps) onto one pixel grid;
:func:`write_dem_fits` writes a DEM result (EM cube with a log T axis plus maps of status,
chi^2, EM-weighted log T and total EM) with the input's celestial WCS, atomically.

Examples
--------
>>> from fastinv import datasets
>>> from fastinv.dem.io import read_aia
>>> obs = read_aia(datasets.aia_flare_files())
>>> obs.data.shape, obs.n_sample
((6, 67, 67), 1.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .._atomic import atomic_output
from .._fits import header_number, open_fits
from .._warnings import warn_user
from ..status import DEM_STATUS
from .basis_pursuit import BasisPursuit, BPResult
from .response import AIA_CHANNELS

__all__ = ["AIAObservation", "read_aia", "write_dem_fits"]

# Header keywords of the celestial WCS and the observer that the output keeps.
_WCS_KEYS = (
    "CTYPE1",
    "CTYPE2",
    "CUNIT1",
    "CUNIT2",
    "CRVAL1",
    "CRVAL2",
    "CDELT1",
    "CDELT2",
    "CRPIX1",
    "CRPIX2",
    "CROTA2",
    "PC1_1",
    "PC1_2",
    "PC2_1",
    "PC2_2",
    "DATE-OBS",
    "T_OBS",
    "DSUN_OBS",
    "DSUN_REF",
    "HGLN_OBS",
    "HGLT_OBS",
    "CRLN_OBS",
    "CRLT_OBS",
    "RSUN_REF",
    "RSUN_OBS",
    "TELESCOP",
    "LONPOLE",
    "LATPOLE",
)


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
    with open_fits(path) as hdul:
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


def read_aia(inputs: Sequence[Union[str, Path, object]], bin: int = 1, presummed: float = 1.0) -> AIAObservation:
    """Read six AIA level-1/1.5 images (FITS paths, sunpy Maps or a MapSequence) in any order.

    Parameters
    ----------
    inputs : sequence or sunpy.map.MapSequence
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
        A missing or duplicated channel, mismatched shapes, EXPTIME <= 0, not AIA data, or
        ``bin`` larger than the images.
    """
    if int(bin) != bin or bin < 1:
        raise ValueError("bin must be an integer >= 1")
    if not (np.isfinite(presummed) and presummed >= 1):
        raise ValueError("presummed must be >= 1 (original pixels per input pixel)")
    bin = int(bin)
    if hasattr(inputs, "maps"):  # a sunpy MapSequence
        inputs = inputs.maps
    by_chan: dict[int, tuple] = {}
    for item in inputs:
        data, hdr, name = _load_one(item)
        tel = str(hdr.get("TELESCOP", "")) + " " + str(hdr.get("INSTRUME", ""))
        if "AIA" not in tel.upper():
            raise ValueError(f"{name}: not SDO/AIA data (TELESCOP/INSTRUME = {tel.strip()!r})")
        wave = int(round(header_number(hdr, "WAVELNTH", name, low=1, high=10000)))
        if wave not in AIA_CHANNELS:
            raise ValueError(f"{name}: channel {wave} A is not one of {AIA_CHANNELS}")
        if wave in by_chan:
            raise ValueError(f"channel {wave} A given twice: {by_chan[wave][2]} and {name}")
        by_chan[wave] = (data, hdr, name)
    missing = [c for c in AIA_CHANNELS if c not in by_chan]
    if missing:
        raise ValueError(f"missing AIA channel(s) {missing} A: give one image for each of {AIA_CHANNELS}")
    shapes = {c: by_chan[c][0].shape for c in AIA_CHANNELS}
    if len(set(shapes.values())) != 1:
        raise ValueError(f"the six images must have the same shape, got {shapes}")
    cube, expt = [], []
    for c in AIA_CHANNELS:
        data, hdr, name = by_chan[c]
        # AIA exposures are 0 to 3 s; a day is a generous bound, T (a logical) is refused
        t = header_number(hdr, "EXPTIME", name, low=0, high=86400)
        if t <= 0:
            raise ValueError(f"{name}: EXPTIME = {t!r}; need an exposure > 0 s")
        unit = str(hdr.get("BUNIT", hdr.get("PIXLUNIT", "DN"))).replace(" ", "").lower()
        per_second = unit.endswith("/s") or unit.endswith("s-1") or unit.endswith("s^-1")
        if not np.isfinite(data).any():
            warn_user(
                f"AIA channel {c} A ({name}) has no finite pixel (all NaN/inf): every pixel "
                "gets status 12 (bad input) and NaN products"
            )
        cube.append(data if per_second else data / t)
        expt.append(t)
    y = np.stack(cube)
    if bin > min(y.shape[1:]):
        raise ValueError(f"bin = {bin} is larger than the images ({y.shape[1]} x {y.shape[2]} pixels)")
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
    return AIAObservation(
        data=y,
        exptime=np.array(expt),
        n_sample=float(bin * bin * presummed),
        header=hdr,
        files=[by_chan[c][2] for c in AIA_CHANNELS],
    )


def write_dem_fits(
    path: Union[str, Path],
    result: BPResult,
    bp: Optional[BasisPursuit] = None,
    obs: Optional[AIAObservation] = None,
    method_cards: Optional[dict] = None,
    refine_status: Optional[np.ndarray] = None,
) -> None:
    """Write a DEM result as FITS (atomically: temp file in the same directory, then rename).

    HDUs: primary = EM cube (nT, ny, nx) in cm^-5 with a log T axis (axis 3) plus the input's
    celestial WCS; ``STATUS``, ``TOLFAC``, ``CHI2``, ``LOGT_EM`` (EM-weighted log T) and
    ``EM_TOTAL`` maps; ``LOGT`` (the grid); with Monte-Carlo errors in ``result`` also
    ``EM_ERR`` (nT, ny, nx), ``LOGT_EM_ERR``, ``EM_TOTAL_ERR`` and ``MC_FEAS`` (DeepEM's calibrated
    errors: the first three; ``FI_ERRM`` says which). Every per-pixel
    product (EM, EM_TOTAL, LOGT_EM, CHI2) is NaN where STATUS != 0: undefined, as the FITS
    convention has it, not zero. For a Basis Pursuit result (``bp`` given) the
    header records the response table (name and SHA-256), grid, basis widths and tolerances;
    other methods (DeepEM) pass their own provenance as ``method_cards`` (keyword -> value or
    (value, comment)). ``refine_status`` (DeepEM ``refine=True``) adds a ``REFINE`` map: 0 the
    network's EM already fitted and was kept, 1 the refinement moved it, otherwise the
    DEM_STATUS code of why refinement failed. Every HDU carries FITS CHECKSUM/DATASUM cards.
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
    prim["CDELT3"] = (
        float(step.mean()),
        "uniform grid" if np.allclose(step, step[0]) else "NON-uniform: see the LOGT HDU",
    )
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
    for code, text in DEM_STATUS.items():
        prim.add_comment(f"STATUS {code}: {text}")
    maps = fits.Header()
    if obs is not None:
        maps.update(obs.header)
    prim.add_comment("EM, EM_TOTAL, LOGT_EM and CHI2 are NaN (undefined) where STATUS != 0")
    if result.em_err is not None and result.mc_feasible is not None:
        prim["FI_ERRM"] = ("Monte-Carlo", "*_ERR: data perturbed by sigma, re-solved")
        prim["FI_MCN"] = (int(result.mc_samples), "Monte-Carlo draws per pixel for the *_ERR HDUs")
        prim["FI_MCSD"] = (int(result.mc_seed), "seed of the Monte-Carlo draws")
        prim.add_comment(
            "EM_ERR, LOGT_EM_ERR, EM_TOTAL_ERR: 1-sigma Monte-Carlo errors (data "
            "perturbed by sigma, re-solved); MC_FEAS: feasible fraction of the draws"
        )
    elif result.em_err is not None:
        prim["FI_ERRM"] = ("Jacobian + calibrated model error", "*_ERR: see the model card")
        if result.errors_precision is not None:
            prim["FI_EPREC"] = (result.errors_precision, "precision of the noise through the network")
        prim.add_comment(
            "EM_ERR, LOGT_EM_ERR, EM_TOTAL_ERR: 1-sigma errors, the data's noise through the "
            "network's Jacobian in quadrature with the model's own error (calibrated, model card)"
        )
    failed = result.status != 0
    em = result.em.astype(np.float32)  # a copy: the caller's result keeps its values
    em[:, failed] = np.nan
    hdus = [fits.PrimaryHDU(em, header=prim)]
    with np.errstate(invalid="ignore"):
        extra = {
            "STATUS": result.status.astype(np.int16),
            "TOLFAC": result.tolfac.astype(np.float32),
            "CHI2": np.where(failed, np.nan, result.chi2).astype(np.float32),
            "LOGT_EM": np.where(failed, np.nan, result.logt_mean).astype(np.float32),
            "EM_TOTAL": np.where(failed, np.nan, result.total_em).astype(np.float32),
        }
    if result.em_err is not None:  # Monte-Carlo errors (BasisPursuit.solve(n_samples=N))
        em_err = result.em_err.astype(np.float32)
        em_err[:, failed] = np.nan
        extra.update(
            {
                "EM_ERR": em_err,
                "LOGT_EM_ERR": np.where(failed, np.nan, result.logt_err).astype(np.float32),
                "EM_TOTAL_ERR": np.where(failed, np.nan, result.total_em_err).astype(np.float32),
            }
        )
        if result.mc_feasible is not None:
            extra["MC_FEAS"] = np.where(failed, np.nan, result.mc_feasible).astype(np.float32)
    if refine_status is not None:
        extra["REFINE"] = np.asarray(refine_status).astype(np.int16)
        prim.add_comment("REFINE: 0 network EM kept, 1 moved to fit y within BP's band, else STATUS code")
    for name, arr in extra.items():
        h = maps.copy()
        if name in ("EM_TOTAL", "EM_TOTAL_ERR", "EM_ERR"):
            h["BUNIT"] = "cm-5"
        if name == "LOGT_EM_ERR":
            h["BUNIT"] = "dex"
        hdus.append(fits.ImageHDU(arr, header=h, name=name))
    hdus.append(fits.ImageHDU(np.asarray(lt, dtype=np.float64), name="LOGT"))
    hdul = fits.HDUList(hdus)
    with atomic_output(Path(path)) as tmp:
        # checksums let a resumed series tell a complete file from a damaged one
        hdul.writeto(str(tmp), overwrite=True, checksum=True)
