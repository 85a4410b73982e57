"""FITS output of Milne-Eddington inversions of maps (``fastinv stokes invert --method me|cnn+me``).

One file per map (or per ViSP raster step), written atomically; every image is (ny, nx) with
the input's celestial WCS, x = slit position / raster step, y = along the slit:

==============================  ==========  ==================================================
HDU (EXTNAME)                   unit        content
==============================  ==========  ==================================================
primary                         --          configuration of the inversion (keywords below)
``mag_strength``                G           |B|
``mag_inclination``             deg         0 = toward the observer
``mag_azimuth``                 deg         [0, 180), from +Q (180 deg ambiguous)
``velocity``                    km/s        line of sight, > 0 = red shift
``doppler_width``               mA
``damping``                     --          Voigt damping a
``line_strength``               --          eta0
``source_function``             I_c         S0 (units of the map's quiet-Sun continuum)
``source_function_gradient``    I_c         S1
``filling_factor``              --          (only when fitted)
``<name>_error``                as <name>   1 sigma from the covariance, scaled by reduced chi2
``correlation``                 --          (6, ny, nx): B-incl, B-azim, B-vlos, incl-azim,
                                            incl-vlos, azim-vlos (CORR1..6 name them)
``chi2``                        --          total reduced chi2
``chi2_stokes``                 --          (4, ny, nx): mean squared normalised residual of
                                            I, Q, U, V
``iterations``                  --          LM steps (all starts)
``restarts``                    --          extra starts used
``status``                      --          uint8, STATn name the codes
                                            (:data:`fastinv.status.ME_INV_STATUS`, and 5: no file)
==============================  ==========  ==================================================

The names of the first four are DKIST's level-2 ones (as :func:`.output.write_inversion_fits`
uses for the network). Primary-header keywords, after HMI's ME series (hmi.ME_720s): INVCODE,
INVCODEV, INVMETH, INVINIT, INVINITM (initialisation model), INVFREE (free parameters),
INVWGHTI/Q/U/V (chi2 weights), INVITERA (iteration limit), INVTOL, INVCHIST (chi2 threshold of
status 2), INVRSTRT and INVRCHI2 (restarts and their chi2 trigger), INVSIGMA (noise level),
INVMU, INVVMAC, INVNLINE and INVLINn (line name, lambda0 [A], g_eff), INVNLAM, INVLAM1,
INVLAM2 (grid), INVNPRCS (pixels inverted), INVNCNVG (status 0).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ... import __version__
from ..._atomic import atomic_output
from ..._fits import status_meaning_card
from ...status import ME_INV_STATUS

__all__ = ["ME_LEVEL2_NAMES", "ME_MISSING", "write_me_fits", "me_config_cards"]

#: fastinv ME parameter -> (EXTNAME, FITS unit).
ME_LEVEL2_NAMES = {
    "B": ("mag_strength", "G"),
    "inclination": ("mag_inclination", "deg"),
    "azimuth": ("mag_azimuth", "deg"),
    "vlos": ("velocity", "km/s"),
    "doppler_width": ("doppler_width", "mAngstrom"),
    "damping": ("damping", ""),
    "eta0": ("line_strength", ""),
    "S0": ("source_function", ""),
    "S1": ("source_function_gradient", ""),
    "filling_factor": ("filling_factor", ""),
}
#: Status of the pixels of a slit position / raster step without a file.
ME_MISSING = 5
_CORR_PAIRS = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
_CORR_NAMES = ("B", "inclination", "azimuth", "vlos")


def me_config_cards(inversion, method: str, sigma: float | None = None) -> dict:
    """Primary-header keywords (key -> (value, comment)) recording an :class:`.me.MEInversion`'s
    configuration (module docstring)."""
    inv = inversion
    cards = {
        "INVCODE": ("fastinv ME LM", "ME Levenberg-Marquardt"),
        "INVCODEV": (__version__, "fastinv version"),
        "INVMETH": (method, "fastinv stokes invert --method"),
        "INVINIT": (inv.init_method, "initial guess: network, classical or user"),
    }
    if inv.init_method == "network":
        cards["INVINITM"] = (os.path.basename(inv.network.path), "ME-initialisation network")
    cards["INVFREE"] = (",".join(inv.free), "free")
    for s, w in zip("IQUV", inv.weights):
        cards[f"INVWGHT{s}"] = (w, f"chi2 weight of Stokes {s}")
    cards["INVITERA"] = (inv.max_iterations, "maximum LM iterations")
    cards["INVTOL"] = (inv.tolerance, "relative chi2 change of convergence")
    cards["INVCHIST"] = (inv.chi2_threshold if np.isfinite(inv.chi2_threshold) else "none", "chi2 of status 2")
    cards["INVRSTRT"] = (inv.restarts, "extra starts at most, where chi2 > INVRCHI2")
    cards["INVRCHI2"] = (inv.restart_chi2, "reduced chi2 that triggers restarts")
    if sigma is not None:
        cards["INVSIGMA"] = (float(sigma), "noise [I_c of each pixel] assumed by chi2")
    cards["INVMU"] = (inv.mu, "cos(heliocentric angle) assumed")
    cards["INVVMAC"] = (inv.vmac, "[km/s] fixed macroturbulence")
    lines = inv.model.lines
    cards["INVNLINE"] = (len(lines), "spectral lines of the ME model")
    for k, line in enumerate(lines, 1):
        cards[f"INVLIN{k}"] = (f"{line.name} {line.wavelength:.4f} {line.g_eff:.3f}", "name, lambda0 [A], g_eff")
    wl = inv.wavelength
    cards["INVNLAM"] = (int(wl.size), "wavelengths fitted")
    cards["INVLAM1"] = (float(wl[0]), "[A] first wavelength fitted")
    cards["INVLAM2"] = (float(wl[-1]), "[A] last wavelength fitted")
    inst = inv.model.instrument
    if inst is not None:
        cards["INVINSTR"] = (inst.name, "instrument LSF and sampling of the model")
    return cards


def write_me_fits(
    path: str | os.PathLike,
    parameters: Mapping[str, np.ndarray],
    errors: Mapping[str, np.ndarray],
    correlations: np.ndarray,
    chi2: np.ndarray,
    iterations: np.ndarray,
    restarts: np.ndarray,
    status: np.ndarray,
    wcs=None,
    cards: Mapping[str, tuple] | None = None,
    free: tuple = (),
) -> Path:
    """Write ME maps (layout in the module docstring), atomically.

    Parameters
    ----------
    parameters, errors : mapping of ME parameter -> (ny, nx)
    correlations : (ny, nx, 5, 5)
        As :attr:`.me.MEResult.correlations`.
    chi2 : (ny, nx, 5)
        I, Q, U, V and total reduced chi2.
    iterations, restarts, status : (ny, nx)
    wcs : astropy.wcs.WCS, optional
        2-D celestial WCS of the (ny, nx) image.
    cards : mapping, optional
        Primary-header cards (key -> (value, comment)), e.g. :func:`me_config_cards`.
    free : tuple of str
        Fitted parameters; ``filling_factor`` is written only when in it.

    Returns
    -------
    pathlib.Path
    """
    from astropy.io import fits

    status = np.asarray(status)
    if status.ndim != 2:
        raise ValueError(f"status must be (ny, nx), got {status.shape}")
    shape = status.shape
    img = fits.Header()
    if wcs is not None:
        img.update(wcs.to_header())
    primary = fits.PrimaryHDU()
    ph = primary.header
    ph["ORIGIN"] = ("fastinv", "fastinv Stokes inversion (Milne-Eddington)")
    ph["VLOSCONV"] = ("positive = red shift", "velocity along the line of sight")
    ph["AZIMCONV"] = ("from +Q, 180 deg ambiguous", "mag_azimuth in [0, 180) deg")
    for key, (value, comment) in dict(cards or {}).items():
        ph[key] = (value, comment)
    ph["INVNPRCS"] = (int(np.sum(status != ME_MISSING)), "pixels inverted")
    ph["INVNCNVG"] = (int(np.sum(status == 0)), "pixels with status 0")
    hdus = [primary]

    def image(data, name: str, unit: str, dtype=np.float32) -> None:
        arr = np.asarray(data, dtype=dtype)
        if arr.shape[-2:] != shape:
            raise ValueError(f"{name}: shape {arr.shape} does not end with the map's {shape}")
        h = img.copy()
        if arr.ndim == 3:
            h["WCSAXES"] = 3
            h["CTYPE3"], h["CRPIX3"], h["CRVAL3"], h["CDELT3"] = "INDEX", 1.0, 1.0, 1.0
        h["BUNIT"] = unit
        hdus.append(fits.ImageHDU(arr, header=h, name=name))

    for key, (name, unit) in ME_LEVEL2_NAMES.items():
        if key == "filling_factor" and key not in free:
            continue
        image(parameters[key], name, unit)
        image(errors[key], f"{name}_error", unit)
        hdus[-1].header["ERRTYPE"] = ("1 sigma", "sqrt of the covariance diagonal x reduced chi2")
    corr = np.asarray(correlations)
    image(np.stack([corr[..., i, j] for i, j in _CORR_PAIRS]), "correlation", "")
    for k, (i, j) in enumerate(_CORR_PAIRS, 1):
        hdus[-1].header[f"CORR{k}"] = (f"{_CORR_NAMES[i]}-{_CORR_NAMES[j]}", "correlation coefficient of plane")
    chi2 = np.asarray(chi2)
    image(chi2[..., 4], "chi2", "")
    hdus[-1].header["CHI2DEF"] = ("weighted reduced chi2", "sum w (fit - obs)^2 / sigma^2 / (N - free)")
    image(np.moveaxis(chi2[..., :4], -1, 0), "chi2_stokes", "")
    hdus[-1].header["CHI2DEF"] = ("mean ((fit - obs) / sigma)^2", "planes I, Q, U, V")
    image(np.clip(iterations, 0, 32767), "iterations", "", np.int16)
    image(restarts, "restarts", "", np.uint8)
    image(status, "status", "", np.uint8)
    for code, text in {**ME_INV_STATUS, ME_MISSING: "no data (no file for this slit position / step)"}.items():
        hdus[-1].header[f"STAT{code}"] = status_meaning_card(text[:68])
    path = Path(path)
    with atomic_output(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)
    return path
