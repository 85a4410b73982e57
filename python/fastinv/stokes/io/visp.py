"""DKIST ViSP level-1 files: one FITS file per raster step and Stokes parameter.

Each file (SPEC-214 headers) holds one frame of numpy shape ``(1, Nλ, N_slit)``: FITS axis 1
is along the slit (``HPLT-TAN``), axis 2 the dispersion (``AWAV``, air wavelength), axis 3
the raster step (``HPLN-TAN``, length 1). The dataset axes say where the frame belongs:
``DINDEX3`` is the raster step and ``DINDEX4`` the Stokes parameter (``DNAXIS4 = 4``). Their
base differs between real data and simulators (0 or 1 or anything), so files are grouped
and ordered by the **values** of DINDEX3/DINDEX4, never by assuming a base: the four
DINDEX4 values of a step, sorted, are I, Q, U, V (a ``STOKES`` key, when present, must
agree). Wavelength = ``CRVAL2 + (i + 1 - CRPIX2) * CDELT2`` in ``CUNIT2`` (nm in real data,
m in the simulator; both accepted). Data are read from the first HDU that has data (real
files put a compressed image in HDU 1).

A DKIST dataset's ASDF file (``dkist.load_dataset``, needs the optional ``dkist`` package)
is accepted in place of its FITS files: :func:`visp_dataset_files` takes the dataset's file
list from it, and the frames are then read and checked as above.

Examples
--------
>>> from fastinv.stokes.io.visp import group_visp_files, read_visp_step   # doctest: +SKIP
>>> steps = group_visp_files(sorted(glob.glob("VISP_*.fits")))            # doctest: +SKIP
>>> frame = read_visp_step(steps[0])                                      # doctest: +SKIP
>>> frame.stokes.shape                    # (4, N_lambda, N_slit)           # doctest: +SKIP
(4, 976, 2555)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from ..._fits import header_number, open_fits
from .hinode import wavelength_from_header

__all__ = [
    "VispStep",
    "read_visp_header",
    "group_visp_files",
    "read_visp_step",
    "visp_map_wcs",
    "visp_dataset_files",
    "STOKES_NAMES",
]

STOKES_NAMES = ("I", "Q", "U", "V")


@dataclass
class VispStep:
    """The four Stokes files of one raster step: ``paths`` in I, Q, U, V order, the raster
    index (``DINDEX3`` value), and after :func:`read_visp_step` the data
    ``stokes`` (4, Nλ, N_slit) float32, ``wavelength`` [A] and the Stokes I header."""

    step: int
    paths: list[str]
    stokes: np.ndarray | None = None
    wavelength: np.ndarray | None = None
    header: object = field(default=None, repr=False)


def _data_hdu(hdul, path: str):
    hdu = next((h for h in hdul if getattr(h, "data", None) is not None and h.header.get("NAXIS", 0) > 0), None)
    if hdu is None:
        raise ValueError(f"{path}: no image data")
    return hdu


def read_visp_header(path: str | os.PathLike):
    """The header of the data HDU of a ViSP level-1 file, checked to be a ViSP frame.

    Raises
    ------
    ValueError
        Another instrument, no DINDEX3/DINDEX4, or wrong axes.
    """

    path = os.fspath(path)
    with open_fits(path) as hdul:
        header = _data_hdu(hdul, path).header.copy()
    _check_header(header, path)
    return header


def _check_header(h, path: str) -> None:
    inst = str(h.get("INSTRUME", "")).strip().upper()
    if inst and inst != "VISP":
        hint = " (use --instrument hinode)" if inst.startswith("SOT") else ""
        raise ValueError(f"{path}: INSTRUME = {inst!r}, not DKIST ViSP{hint}")
    for key in ("DINDEX3", "DINDEX4"):
        if key not in h:
            raise ValueError(
                f"{path}: no {key}: not a DKIST level-1 frame (SPEC-214 headers with "
                "DINDEX3 = raster step, DINDEX4 = Stokes parameter)"
            )
        header_number(h, key, path, integer=True, low=0, high=2**31 - 1)
    ctype = [str(h.get(f"CTYPE{k}", "")).strip().upper() for k in (1, 2, 3)]
    if not ctype[1].startswith(("AWAV", "WAVE")):
        raise ValueError(
            f"{path}: FITS axis 2 is {ctype[1]!r}, expected the dispersion axis AWAV "
            f"(axes: {ctype}); is this a ViSP level-1 frame?"
        )
    if not (ctype[0].startswith("HPLT") or ctype[0].startswith("HPLN")):
        raise ValueError(f"{path}: FITS axis 1 is {ctype[0]!r}, expected the spatial axis along the slit")


def group_visp_files(paths: Sequence[str | os.PathLike]) -> list[VispStep]:
    """Group per-Stokes files into raster steps ordered by ``DINDEX3``.

    Raises
    ------
    ValueError
        A step without exactly four distinct Stokes files, two files for the same step and
        Stokes (files of more than one map), or a ``STOKES`` key that contradicts the order.
    """
    if not paths:
        raise ValueError("no ViSP files given")
    entries = []
    for p in paths:
        p = os.fspath(p)
        h = read_visp_header(p)
        entries.append((int(h["DINDEX3"]), int(h["DINDEX4"]), str(h.get("STOKES", "")).strip().upper(), p))
    by_step: dict[int, dict[int, tuple[str, str]]] = {}
    for step, st, name, p in entries:
        slot = by_step.setdefault(step, {})
        if st in slot:
            raise ValueError(
                f"{slot[st][1]} and {p} are both raster step DINDEX3={step}, Stokes DINDEX4={st}: "
                "files of more than one map; invert one map at a time"
            )
        slot[st] = (name, p)
    values = sorted({st for _, st, _, _ in entries})
    steps = []
    for step in sorted(by_step):
        slot = by_step[step]
        if len(slot) != 4:
            have = sorted(slot)
            missing = [STOKES_NAMES[i] for i, v in enumerate(values) if v not in slot] if len(values) == 4 else []
            raise ValueError(
                f"raster step DINDEX3={step} has {len(slot)} Stokes files (DINDEX4 {have})"
                + (f", missing Stokes {', '.join(missing)}" if missing else "")
                + ": ViSP inversion needs I, Q, U and V of every step ("
                + ", ".join(v[1] for v in slot.values())
                + ")"
            )
        order = sorted(slot)
        names = [slot[k][0] for k in order]
        if all(names) and names != list(STOKES_NAMES):
            raise ValueError(
                f"raster step DINDEX3={step}: STOKES keys {names} in DINDEX4 order, expected I, Q, U, V "
                f"({', '.join(slot[k][1] for k in order)})"
            )
        steps.append(VispStep(step, [slot[k][1] for k in order]))
    return steps


def read_visp_step(step: VispStep, out: np.ndarray | None = None) -> VispStep:
    """Read the four frames of ``step`` into ``step.stokes`` (4, Nλ, N_slit) float32.

    Parameters
    ----------
    out : numpy.ndarray, optional
        A float32 (4, Nλ, N_slit) buffer to fill (frame-by-frame reuse).

    Raises
    ------
    ValueError
        Frames of different shapes or wavelength grids, or not (1, Nλ, N_slit) data.
    """

    wl0 = None
    for k, p in enumerate(step.paths):
        with open_fits(p) as hdul:
            hdu = _data_hdu(hdul, p)
            h = hdu.header
            _check_header(h, p)
            data = np.asarray(hdu.data)
            if data.ndim == 3 and data.shape[0] == 1:
                data = data[0]
            if data.ndim != 2:
                raise ValueError(f"{p}: a ViSP frame has shape (1, N_lambda, N_slit), got {hdu.data.shape}")
            wl = wavelength_from_header(h, 2, p)
            if wl.size != data.shape[0]:
                raise ValueError(f"{p}: NAXIS2 = {wl.size} wavelengths but the data have {data.shape[0]} rows")
            if wl0 is None:
                wl0, header = wl, h.copy()
                if out is None or out.shape != (4, *data.shape):
                    out = np.empty((4, *data.shape), dtype=np.float32)
            elif data.shape != out.shape[1:] or not np.allclose(wl, wl0, rtol=0, atol=1e-6):
                raise ValueError(f"{p}: frame shape/wavelengths differ from {step.paths[0]} (same raster step)")
            np.copyto(out[k], data, casting="unsafe")
    step.stokes, step.wavelength, step.header = out, wl0, header
    return step


def visp_map_wcs(header):
    """Celestial WCS of a map image (N_slit rows along the slit, one column per raster step)
    from the first step's header: FITS axes (raster = axis 3, slit = axis 1) of the frame."""
    import warnings

    from astropy.wcs import WCS, FITSFixedWarning

    h = header.copy()
    for key in list(h.keys()):  # DKIST files carry a second (A) WCS and dataset keys; keep the primary WCS
        if key.startswith(("DNAXIS", "DTYPE", "DPNAME", "DWNAME", "DUNIT", "DINDEX")):
            del h[key]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        w = WCS(h, naxis=3)
    return w.sub([3, 1])


def visp_dataset_files(asdf: str | os.PathLike) -> list[str]:
    """The level-1 FITS files of a DKIST ViSP dataset, from its ASDF file (needs ``dkist``).

    Raises
    ------
    ImportError
        The ``dkist`` package is not installed.
    ValueError
        Not a ViSP dataset.
    FileNotFoundError
        Some of the dataset's FITS files have not been downloaded next to the ASDF file.
    """
    from ..._optional import require

    dkist = require("dkist", "reading a DKIST dataset's ASDF file (or pass its level-1 FITS files)")
    import warnings
    from pathlib import Path

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dkist/gwcs version chatter on old ASDF files
        ds = dkist.load_dataset(os.fspath(asdf))
    inst = str((getattr(ds, "inventory", None) or {}).get("instrumentName", "")).strip().upper()
    if inst and inst != "VISP":
        raise ValueError(f"{asdf}: a {inst} dataset, not ViSP")
    fm = ds.files
    base = Path(fm.basepath) if fm.basepath is not None else Path(os.fspath(asdf)).parent
    paths = [base / name for name in fm.filenames]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of the dataset's {len(paths)} FITS files are not in {base} "
            f"(e.g. {missing[0].name}): download them first (dkist: dataset.files.download())"
        )
    return [str(p) for p in paths]
