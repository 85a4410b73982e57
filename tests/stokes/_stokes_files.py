"""Synthetic observation files in the real layouts, filled with fastinv's LTE Stokes profiles.

- Hinode SP level-1: one FITS per slit, primary HDU int16 (4, N_y, 112), Stokes I above
  32767 stored wrapped (negative), halved parameters per SPBSHFT, the level-1 keywords.
- DKIST ViSP level-1: written by ``dkist-data-simulator`` (SPEC-214-valid headers and file
  layout), then the random data replaced by synthetic Stokes and the spectral axis set to
  ViSP's 630 nm sampling (CUNIT2 nm as in real data, or m as the simulator writes).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

VISP_N_WL = 400


def hinode_true_counts(nx: int, ny: int, ic: float, seed: int = 0) -> np.ndarray:
    """(nx, 4, ny, 112) float64 counts of LTE profiles x ic (quantised as written)."""
    from fastinv.stokes.synthesis.training_sets import lte_training_set

    d = lte_training_set(nx * ny, instrument="hinode", seed=seed)
    s = d["stokes"].astype(np.float64).reshape(nx, ny, 4, 112).transpose(0, 2, 1, 3) * ic
    return s


def stored_hinode(true: np.ndarray, spbshft: int) -> tuple[np.ndarray, np.ndarray]:
    """(int16 data as in the file, the counts the reader must return) for one slit (4, ny, nλ)."""
    div = np.ones(4)
    if spbshft >= 1:
        div[0] = 2
    if spbshft >= 2:
        div[3] = 2
    if spbshft >= 3:
        div[1:3] = 2
    q = np.rint(true / div[:, None, None])
    assert q[0].min() >= 0 and q[0].max() <= 65535 and np.abs(q[1:]).max() <= 32767
    expected = q * div[:, None, None]
    raw = q.copy()
    raw[0][raw[0] > 32767] -= 65536  # 16-bit wrap-around of bright Stokes I
    return raw.astype(np.int16), expected


def write_hinode_map(
    directory,
    true: np.ndarray,
    spbshft: int = 0,
    xcen0: float = -120.0,
    ycen: float = 35.0,
    xscale: float = 0.1476,
    yscale: float = 0.16,
    instrume: str = "SOT/SP",
) -> tuple[list, np.ndarray]:
    """Write slits of ``true`` (nx, 4, ny, 112); returns (paths, expected read-back counts)."""
    from astropy.io import fits

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths, expected = [], []
    nx = true.shape[0]
    for x in range(nx):
        raw, exp = stored_hinode(true[x], spbshft)
        h = fits.Header()
        h["INSTRUME"] = instrume
        h["TELESCOP"] = "HINODE"
        h["CTYPE1"], h["CUNIT1"], h["CRVAL1"], h["CDELT1"], h["CRPIX1"] = (
            "WAVELENGTH",
            "Angstrom",
            6302.08,
            0.0215,
            56.5,
        )
        h["SPBSHFT"] = spbshft
        h["SLITINDX"] = x
        h["XCEN"], h["YCEN"] = xcen0 + x * xscale, ycen
        h["XSCALE"], h["YSCALE"], h["CROTA2"] = xscale, yscale, 0.0
        h["DATE_OBS"] = f"2007-01-05T08:21:{18 + x:02d}.700"
        # file names deliberately not in slit order: the reader sorts by SLITINDX
        p = directory / f"SP3D20070105_{(nx - x) * 7 % 97:03d}.fits"
        fits.PrimaryHDU(raw, header=h).writeto(p, overwrite=True)
        paths.append(str(p))
        expected.append(exp)
    return paths, np.stack(expected)


def visp_wavelength(n: int = VISP_N_WL) -> np.ndarray:
    return 6302.0 + (np.arange(n) - (n - 1) / 2) * 0.01625


def visp_true_counts(n_steps: int, n_slit: int, ic: float, seed: int = 0, n_wl: int = VISP_N_WL) -> np.ndarray:
    """(n_steps, 4, n_wl, n_slit) float32 counts of LTE profiles on the ViSP grid."""
    from fastinv.stokes import Instrument
    from fastinv.stokes.synthesis.training_sets import lte_training_set

    inst = Instrument.visp(n=n_wl)
    d = lte_training_set(n_steps * n_slit, instrument=inst, seed=seed)
    return (d["stokes"].reshape(n_steps, n_slit, 4, n_wl).transpose(0, 2, 3, 1) * ic).astype(np.float32)


def simulate_visp(directory, n_steps: int, n_slit: int, n_wl: int = VISP_N_WL) -> list[str]:
    """Header-correct ViSP level-1 files from dkist-data-simulator (random data)."""
    import astropy.units as u
    from dkist_data_simulator.spec214.visp import SimpleVISPDataset

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ds = SimpleVISPDataset(1, n_steps, 4, 10, linewave=630.2 * u.nm, detector_shape=(n_wl, n_slit))
    ds.generate_files(str(directory))
    return sorted(str(p) for p in directory.glob("*.fits"))


def fill_visp(
    paths,
    true: np.ndarray,
    unit: str = "nm",
    dindex3_base: int | None = None,
    dindex4_base: int | None = None,
    keep_stokes_key: bool = True,
) -> dict:
    """Put ``true`` (n_steps, 4, n_wl, n_slit) into simulator files; returns {(step, stokes): path}.

    The step/Stokes of a file are its simulator DINDEX3/DINDEX4 (0-based); the bases can be
    moved (real data do not start at 0) and the STOKES key removed (real data have none).
    """
    from astropy.io import fits

    n_wl = true.shape[2]
    which = {}
    for p in paths:
        with fits.open(p) as hdul:
            k = next(i for i, h in enumerate(hdul) if h.data is not None)
            hdul = fits.HDUList([h.copy() for h in hdul])
        hdu = hdul[k]
        h = hdu.header
        step, st = int(h["DINDEX3"]), int(h["DINDEX4"])
        hdu.data = true[step, st][None].astype(np.float32)
        f = {"nm": 1.0, "m": 1e-9}[unit]
        h["CUNIT2"], h["CRVAL2"], h["CDELT2"], h["CRPIX2"] = unit, 630.2 * f, 0.001625 * f, (n_wl + 1) / 2
        if dindex3_base is not None:
            h["DINDEX3"] = step + dindex3_base
        if dindex4_base is not None:
            h["DINDEX4"] = st + dindex4_base
        if not keep_stokes_key and "STOKES" in h:
            del h["STOKES"]
        hdul.writeto(p, overwrite=True)
        which[(step, st)] = p
    return which


def copy_files(paths, directory) -> list[str]:
    import shutil

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        q = directory / os.path.basename(p)
        shutil.copy(p, q)
        out.append(str(q))
    return out


_NOT_COPIED = {"SIMPLE", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "NAXIS3", "EXTEND", "XTENSION"}
_NOT_COPIED |= {"PCOUNT", "GCOUNT", "COMMENT", "HISTORY", ""}


def write_large_visp(directory) -> tuple:
    """dkist's own ViSP test dataset (4 Stokes x 20 raster steps x 50 wavelengths x 128 slit
    pixels): its ASDF file, and its 80 FITS files written from the headers the ASDF carries,
    filled with known random data. Returns (asdf path, dkist.Dataset, {(step, stokes): data});
    skips the test when this dkist version lacks the dataset."""
    import gzip
    import shutil
    import warnings

    import pytest
    from astropy.io import fits

    dkist = pytest.importorskip("dkist")
    d = Path(directory)
    src = os.path.join(os.path.dirname(dkist.__file__), "data", "test", "large_visp.asdf.gz")
    if not os.path.exists(src):
        pytest.skip("dkist's large_visp test dataset is not in this dkist version")
    asdf = d / "large_visp.asdf"
    with gzip.open(src) as g, open(asdf, "wb") as o:
        shutil.copyfileobj(g, o)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dkist.load_dataset(str(asdf))
    rng = np.random.default_rng(0)
    data = {}
    for name, row in zip(ds.files.filenames, ds.headers):
        h = fits.Header()
        for col in ds.headers.colnames:
            v = row[col]
            if col in _NOT_COPIED or np.ma.is_masked(v) or len(col) > 8:
                continue
            h[col] = v.item() if hasattr(v, "item") else v
        n_wl, n_slit = int(row["NAXIS2"]), int(row["NAXIS1"])
        st = int(row["DINDEX4"])
        arr = (
            rng.normal(1000.0, 20.0, (1, n_wl, n_slit)) if st == 0 else rng.normal(0.0, 30.0, (1, n_wl, n_slit))
        ).astype(np.float32)
        fits.PrimaryHDU(arr, header=h).writeto(d / name)
        data[(int(row["DINDEX3"]), st)] = arr[0]
    return asdf, ds, data
